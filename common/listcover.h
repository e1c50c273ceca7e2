/* listcover.h — did a paged listing see every row, when the list changed
 * while it was read?
 *
 * Zoho pages a listing by offset (page=N, and page_token past 2,000 rows,
 * whose behaviour under changes is undocumented). A row removed before the
 * offset between the reads of two pages shifts the next page left: the row
 * that was first on it is then in no page. The listing of a subform's rows
 * (every line item of every invoice) loses lines that way whenever a parent
 * is deleted or has a line removed while it runs, and the lines so lost
 * belong to any parent, not the changed one.
 *
 * A listing read in ascending id order can only lose rows at a page
 * boundary, between the last id of one page and the first id of the next
 * (new rows get new, higher ids and land after the offset). Rows change
 * only when their parent changes, which Zoho reports with a time (the
 * parent's Modified_Time, or its deleted_time). So a boundary whose two
 * reads straddle no change lost nothing, and the ids a boundary that did
 * may have lost lie in the open interval between its two ids.
 *
 * This module keeps, for one listing read in one or more passes, the
 * intervals no pass has yet shown complete: a pass covers an interval when
 * none of its own suspect boundaries overlaps it. The listing is complete
 * when none is left. Pure: the caller makes the calls and gives the times. */
#ifndef ZCRM_LISTCOVER_H
#define ZCRM_LISTCOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lc_page {
	double t0, t1;        /* our clock (epoch seconds) around the call */
	int64_t lo, hi;       /* smallest and largest id on the page */
	size_t n;             /* rows on the page (0: the listing ended) */
};

struct lc_gap {
	int64_t lo, hi; /* ids strictly between may have been skipped */
};

struct listcover {
	struct lc_page *pages; /* this pass's pages, in order */
	size_t npages, pages_cap;
	struct lc_gap *open;   /* not shown complete by any pass yet */
	size_t nopen;
	int passes;            /* passes ended */
};

/* One page of the current pass: its ids (any order) and when it was read. */
void listcover_page(struct listcover *lc, double t0, double t1, const int64_t *ids, size_t n);

/* Ends the current pass. changes are Zoho's times (whole epoch seconds) of
 * every change to a parent since the pass began; all_changed says the
 * caller could not read them all (every boundary is then suspect). margin
 * is the clock skew allowed between us and Zoho, in seconds. Returns true
 * when the listing is complete. */
bool listcover_end_pass(struct listcover *lc, const int64_t *changes, size_t nchanges,
			bool all_changed, int margin);

/* After the first pass: may the current pass stop, having read past every
 * open interval? */
bool listcover_past_open(const struct listcover *lc);

/* Boundaries of the current pass so far (pages - 1, at least 0). */
size_t listcover_boundaries(const struct listcover *lc);

void listcover_free(struct listcover *lc);

#endif
