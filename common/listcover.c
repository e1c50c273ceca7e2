/* listcover.c — see listcover.h. */
#include "listcover.h"

#include "compiler.h"

#include <stdlib.h>
#include <string.h>

void listcover_page(struct listcover *lc, double t0, double t1, const int64_t *ids, size_t n)
{
	if (lc->npages == lc->pages_cap) {
		lc->pages_cap = lc->pages_cap ? 2 * lc->pages_cap : 16;
		lc->pages = xrealloc(lc->pages, lc->pages_cap * sizeof(*lc->pages));
	}
	struct lc_page *p = &lc->pages[lc->npages++];
	*p = (struct lc_page){.t0 = t0, .t1 = t1, .n = n, .lo = INT64_MAX, .hi = INT64_MIN};
	for (size_t i = 0; i < n; i++) {
		if (ids[i] < p->lo)
			p->lo = ids[i];
		if (ids[i] > p->hi)
			p->hi = ids[i];
	}
}

/* The ids strictly between the pages either side of boundary i; false when
 * there is none (adjacent ids, or rows read twice after a shift right). */
static bool boundary_gap(const struct listcover *lc, size_t i, struct lc_gap *g)
{
	const struct lc_page *a = &lc->pages[i], *b = &lc->pages[i + 1];

	if (a->n == 0)
		return false;
	g->lo = a->hi;
	g->hi = b->n ? b->lo : INT64_MAX;
	return g->hi > g->lo && (uint64_t)g->hi - (uint64_t)g->lo > 1;
}

static bool suspect(const struct listcover *lc, size_t i, const int64_t *changes,
		    size_t nchanges, bool all_changed, int margin)
{
	if (all_changed)
		return true;
	/* A change stamped second c happened in [c, c + 1) on Zoho's clock. */
	double from = lc->pages[i].t0 - margin, to = lc->pages[i + 1].t1 + margin;
	for (size_t k = 0; k < nchanges; k++)
		if ((double)changes[k] + 1 >= from && (double)changes[k] <= to)
			return true;
	return false;
}

size_t listcover_boundaries(const struct listcover *lc)
{
	size_t n = 0;
	struct lc_gap g;

	for (size_t i = 0; i + 1 < lc->npages; i++)
		n += boundary_gap(lc, i, &g);
	return n;
}

bool listcover_end_pass(struct listcover *lc, const int64_t *changes, size_t nchanges,
			bool all_changed, int margin)
{
	size_t ngaps = 0;
	struct lc_gap *gaps = xcalloc(lc->npages ? lc->npages : 1, sizeof(*gaps));

	for (size_t i = 0; i + 1 < lc->npages; i++)
		if (boundary_gap(lc, i, &gaps[ngaps]) &&
		    suspect(lc, i, changes, nchanges, all_changed, margin))
			ngaps++;
	if (lc->passes == 0) {
		free(lc->open);
		lc->open = gaps;
		lc->nopen = ngaps;
	} else {
		/* What stays open is what this pass did not cover either. */
		size_t n = 0;
		size_t most = lc->nopen * ngaps;
		struct lc_gap *still = xcalloc(most ? most : 1, sizeof(*still));
		for (size_t u = 0; u < lc->nopen; u++)
			for (size_t g = 0; g < ngaps; g++) {
				int64_t lo = lc->open[u].lo > gaps[g].lo ? lc->open[u].lo : gaps[g].lo;
				int64_t hi = lc->open[u].hi < gaps[g].hi ? lc->open[u].hi : gaps[g].hi;
				if (hi > lo && (uint64_t)hi - (uint64_t)lo > 1)
					still[n++] = (struct lc_gap){lo, hi};
			}
		free(gaps);
		free(lc->open);
		lc->open = still;
		lc->nopen = n;
	}
	lc->passes++;
	lc->npages = 0;
	return lc->nopen == 0;
}

bool listcover_past_open(const struct listcover *lc)
{
	if (lc->passes == 0 || lc->npages == 0)
		return false;
	const struct lc_page *last = &lc->pages[lc->npages - 1];
	if (last->n == 0)
		return true;
	for (size_t u = 0; u < lc->nopen; u++)
		if (lc->open[u].hi > last->hi)
			return false;
	return true;
}

void listcover_free(struct listcover *lc)
{
	free(lc->pages);
	free(lc->open);
	memset(lc, 0, sizeof(*lc));
}
