-- Jobs asked for ahead of the page being exported (issue 19, [sync]
-- bulk_jobs_ahead): flat (page, job id) pairs, so that a run killed -9
-- reuses the jobs Zoho still has instead of paying for them again. Only
-- read together with bulk_kind/bulk_page: an export that starts afresh
-- clears it.
ALTER TABLE sync_state ADD COLUMN bulk_ahead bigint[];
