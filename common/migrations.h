/* migrations.h — the sql/NNN_*.sql files, embedded at build time. */
#ifndef ZCRM_MIGRATIONS_H
#define ZCRM_MIGRATIONS_H

#include <stddef.h>

struct migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct migration zcrm_migrations[];
extern const size_t zcrm_nmigrations;

#endif
