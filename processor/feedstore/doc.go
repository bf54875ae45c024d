// Package feedstore keeps the published feed files and serves them: a
// full pass writes each file feed's items into part files per partition
// (FeedWriter), Publish switches a feed to the new version atomically
// (the previous one stays served after a crash), and GET /feeds/{id}.xml
// streams the current version (gzip, ETag/304, 404, 503 before the first
// publication). It knows nothing of Kafka or of how items are rendered.
package feedstore
