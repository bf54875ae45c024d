// Package meta is the Meta (Facebook) commerce catalog partner of
// feedmill-connector-meta. One Send is one Graph API
// POST {base}/{catalog_id}/items_batch with item_type=PRODUCT_ITEM,
// allow_upsert=true and up to 3000 UPDATE / DELETE requests; it then polls
// GET {base}/{catalog_id}/check_batch_request_status?handle=... every
// meta.poll_interval until the batch is finished, and maps the per-item
// errors to permanent results. The access token travels in the
// Authorization header, never in a URL.
//
// The package maps items to requests and answers to results; it owns no
// retries or state.
package meta
