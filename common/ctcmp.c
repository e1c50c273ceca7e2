/* ctcmp.c — constant-time string comparison (see ctcmp.h). */
#include "ctcmp.h"

#include <string.h>

bool ct_str_equal(const char *given, const char *expected)
{
	size_t el = strlen(expected);
	size_t gl = given ? strlen(given) : 0;
	/* Every byte of expected is looked at, whatever differs first; the
	 * length of expected is no secret (Zoho allows up to 49 bytes). */
	volatile unsigned char acc = 0;

	for (size_t i = 0; i < el; i++) {
		/* Past the end of given, compare against NUL (always a
		 * difference, as expected holds no NUL before el). */
		unsigned char g = i < gl ? (unsigned char)given[i] : 0;
		acc |= (unsigned char)(g ^ (unsigned char)expected[i]);
	}
	return given != NULL && gl == el && acc == 0;
}
