// Package feedstore keeps the published XML documents of the file feeds in
// a blob store (gocloud.dev/blob: file://, s3:// or gs://) and serves them
// as GET /feeds/{id}.xml from every instance.
//
// The model: a full pass is a run; the instance that scans an offers
// partition writes that partition's share of every file feed with a
// PartWriter, and one instance then publishes the run, which switches each
// feed to it by writing the feed's manifest. Every instance serves the
// version the manifest in the store names, so a load balancer may send a
// partner to any of them.
//
// # Object layout
//
//	runs/<run>/p-<partition, 6 digits>/<attempt>/pack.deflate   the part's pack
//	runs/<run>/p-<partition, 6 digits>/<attempt>/manifest.json  its PartManifest, written last
//	feeds/<feed>.json                                            the FeedManifest: what is served
//
// The pack is one object per (run, partition, attempt): each file feed's
// items of the partition as deflate fragments (deflate.go), one feed after
// the other (feed order of the set). The part manifest records per feed
// its item count, raw (XML) bytes and their CRC-32, and the offset, length
// and CRC-32C of its bytes in the pack. Attempt is a random id of the
// writer, so two instances (or a restart) writing the same (run,
// partition) never overwrite each other; a part manifest that exists
// means its pack is complete.
//
// A feed manifest names the run, its generation time, the item count, the
// header and footer (raw, and as the gzip opening and closing: gzip
// header and header fragment; footer as the final deflate block and the
// gzip trailer with the document's CRC-32 and length), rendered by the
// feed's template at publication, and the ordered list of its pieces in
// the packs (partition order) with lengths, raw lengths and checksums.
// Writing it is the switch: one object per feed, so each feed switches
// atomically; a publication never moves a feed to an older run (run ids
// sort in creation order).
//
// # Deflate fragments
//
// A PartWriter buffers each feed's raw items (up to 32 KiB per feed, in
// pages of a per-writer arena: Store.PartBufferBytes) and compresses them
// with one reused compressor into a fragment: non-final deflate blocks ending
// in a sync flush, so any sequence of fragments plus a final block is one
// deflate stream. The gzip representation of a feed is then its opening,
// the stored fragments of each piece and its closing, sent byte for byte
// without recompressing, as ONE gzip member (curl refuses a concatenation
// of gzip members), with a Content-Length known from the manifest. The
// plain representation decompresses the same pieces on the fly. Fragments
// go to one spool file per writer; Finish uploads them in feed order as
// the pack. Memory stays flat in the catalog size and bounded whatever
// the number of feeds: when the arena is full, the feed holding the most
// is compressed early (its fragment is smaller, not memory larger). One
// file descriptor per writer.
//
// # Serving
//
// Each request reads the feed's manifest (a small object), so every
// instance serves the same version; ETag is the run id ("+.gz" for the gzip
// representation), with If-None-Match/If-Modified-Since → 304, single byte
// ranges (206, 416, If-Range) in both representations, and HEAD. A run's
// objects stay until DeleteRuns removes it, which it never does for a run
// a feed manifest names; the caller keeps the previous published run, so a
// download started before a publication finishes from the older version.
//
// Store is safe for concurrent use; a PartWriter is used by one goroutine.
// The package knows nothing of Kafka, of runs beyond their ids, or of how
// items are rendered (it calls the template's AppendHeader/AppendFooter).
package feedstore
