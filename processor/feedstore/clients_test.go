package feedstore

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
)

// needTool returns the path of an external client, skipping the test when
// it is missing outside CI (.ci/run installs curl and python3).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing in CI: .ci/run installs it", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// TestClients: the gzip representation, stored members sent as they are,
// decodes with curl --compressed, Python's gzip module and Go's reader,
// to the plain representation and the expected document.
func TestClients(t *testing.T) {
	set := testSet(t)
	s := openStore(t, "file://"+t.TempDir()+"/store", set)
	s.PartBufferBytes = chunkBytes
	p := makePlan("run-000001", 3, 2000) // several members per piece
	if err := s.Publish(context.Background(), "run-000001", generated, p.write(t, s, "run-000001")); err != nil {
		t.Fatal(err)
	}
	u := serveStore(t, s) + "/feeds/phones.xml"
	want := p.doc(set, "phones")
	plain := get(t, "GET", u).body
	checkBytes(t, "plain", plain, want)
	gz := get(t, "GET", u, "Accept-Encoding", "gzip").body
	checkBytes(t, "go gzip reader", gunzip(t, gz), want)

	clients := []struct {
		name string
		tool string
		args []string
	}{
		{"curl --compressed", "curl", []string{"-sS", "--fail", "--compressed", u}},
		{"python gzip", "python3", []string{"-c", `
import gzip, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Accept-Encoding": "gzip"})
with urllib.request.urlopen(req) as r:
    assert r.headers["Content-Encoding"] == "gzip", r.headers["Content-Encoding"]
    body = r.read()
    assert len(body) == int(r.headers["Content-Length"]), (len(body), r.headers["Content-Length"])
sys.stdout.buffer.write(gzip.decompress(body))
`, u}},
		{"python gzip stream", "python3", []string{"-c", `
import gzip, shutil, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Accept-Encoding": "gzip"})
with urllib.request.urlopen(req) as r, gzip.GzipFile(fileobj=r) as z:
    shutil.copyfileobj(z, sys.stdout.buffer)
`, u}},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(needTool(t, c.tool), c.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v: %s", err, stderr.Bytes())
			}
			checkBytes(t, c.name, out, want)
		})
	}
}
