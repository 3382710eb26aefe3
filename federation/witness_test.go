package federation

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/cjson"
	"github.com/privateline/privateline/federation/wire"
	"github.com/privateline/privateline/keybundle"
	"github.com/privateline/privateline/keylog"
	"github.com/privateline/privateline/merkle"
	"github.com/privateline/privateline/serverkey"
	"github.com/privateline/privateline/storage"
)

// fakeDir is a directory's log in memory, signed by its server's key
// (WitnessDirectory).
type fakeDir struct {
	mu   sync.Mutex
	name privateline.ServerName
	key  *serverkey.PrivateKey
	tree merkle.Tree
	tag  string // leaf data prefix: two fakeDirs with other tags fork
	at   int64
}

func newFakeDir(name privateline.ServerName, key *serverkey.PrivateKey, tag string) *fakeDir {
	return &fakeDir{name: name, key: key, tag: tag, at: time.Now().UnixMilli()}
}

// grow appends leaves until the log has n.
func (d *fakeDir) grow(n uint64) *fakeDir {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.tree.Size() < n {
		d.tree.Append([]byte(fmt.Sprintf("%s-%d", d.tag, d.tree.Size())))
	}
	return d
}

func (d *fakeDir) Head() (*keylog.TreeHead, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.at++
	h := &keylog.TreeHead{Server: d.name, TreeSize: d.tree.Size(), RootHash: d.tree.Root(), Timestamp: d.at}
	h.Signature = d.key.Sign(h.SigningInput())
	return h, nil
}

func (d *fakeDir) head(t *testing.T) *keylog.TreeHead {
	t.Helper()
	h, err := d.Head()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (d *fakeDir) Consistency(from, to uint64) (*keylog.Consistency, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, err := merkle.ConsistencyProof(&d.tree, from, to)
	if err != nil {
		return nil, err
	}
	return &keylog.Consistency{From: from, To: to, Proof: p}, nil
}

func (d *fakeDir) proof(t *testing.T, from, to uint64) [][]byte {
	t.Helper()
	c, err := d.Consistency(from, to)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(c.Proof))
	for i, h := range c.Proof {
		out[i] = append([]byte(nil), h[:]...)
	}
	return out
}

func headJSON(t *testing.T, h *keylog.TreeHead) []byte {
	t.Helper()
	raw, err := h.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// witnessAsk sends one witness request from a (as a.name, a.key, as a
// peer implementation that sends whatever the test makes) to w and
// returns W's verified answer's result.
func witnessAsk(t *testing.T, a, w *node, head *keylog.TreeHead, since uint64, proof [][]byte) wire.Result {
	t.Helper()
	c := dialRaw(t, a.name, a.key, w)
	e := wire.Entry{ID: newID(), Head: headJSON(t, head), Since: since, Consistency: proof}
	req := &wire.Transaction{Type: wire.TypeWitness, Entries: []wire.Entry{e},
		Header: wire.Header{Origin: a.name, Destination: w.name, TxnID: newID(), CreatedAt: time.Now().UnixMilli()}}
	resp := ask(t, c, sign(t, req, a.key))
	ans, err := wire.VerifyReceipt(resp, wire.Peer{Name: w.name, Key: w.key.Public()}, a.name, time.Now(), wire.DefaultLimits(), req)
	if err != nil {
		t.Fatalf("the witness's answer: %v (%s)", err, resp)
	}
	return ans.Results[0]
}

func heldHead(t *testing.T, st Store, name privateline.ServerName) *keylog.TreeHead {
	t.Helper()
	raw, err := st.PeerDirectoryHead(name)
	if err != nil {
		t.Fatal(err)
	}
	if raw == nil {
		return nil
	}
	h, err := keylog.ParseTreeHead(raw)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func keptCosignature(t *testing.T, st Store, w privateline.ServerName) *keylog.Cosignature {
	t.Helper()
	raw, err := st.Cosignature(w)
	if err != nil {
		t.Fatal(err)
	}
	if raw == nil {
		return nil
	}
	c, err := keylog.ParseCosignature(raw)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWitnessCosignsAndExtends(t *testing.T) {
	a, b := newNode(t, nameA), newNode(t, nameB)
	dir := newFakeDir(nameA, a.key, "a").grow(3)
	pair(t, a, b, func(c *Config) { c.Witness = dir }, nil)
	ctx := testCtx(t)

	// The loop asks b by itself as soon as it starts.
	h3 := dir.head(t)
	waitFor(t, "b's co-signature of a's first head", func() bool {
		c := keptCosignature(t, a.st, nameB)
		return c != nil && c.Covers(h3)
	})
	c := keptCosignature(t, a.st, nameB)
	if err := c.Verify(b.key.Public()); err != nil {
		t.Fatalf("the kept co-signature does not verify under b's key: %v", err)
	}
	if c.Witness != nameB || !c.WitnessKey.Equal(b.key.Public()) {
		t.Fatalf("co-signature names %s / %x", c.Witness, c.WitnessKey)
	}
	if err := c.Verify(a.key.Public()); err == nil {
		t.Fatal("a co-signature verifies under another key")
	}
	if h := heldHead(t, b.st, nameA); h == nil || h.TreeSize != 3 || h.RootHash != h3.RootHash {
		t.Fatalf("b holds %+v as a's head, want size 3", h)
	}

	// The log grows: the next request proves the new head extends the
	// one b co-signed.
	dir.grow(11)
	if err := a.svc.AskWitness(ctx, nameB); err != nil {
		t.Fatal(err)
	}
	h11 := dir.head(t)
	if c := keptCosignature(t, a.st, nameB); c == nil || !c.Covers(h11) || c.Verify(b.key.Public()) != nil {
		t.Fatalf("after growth the kept co-signature is %+v", c)
	}
	if h := heldHead(t, b.st, nameA); h.TreeSize != 11 || h.RootHash != h11.RootHash {
		t.Fatalf("b holds size %d", h.TreeSize)
	}
	if n := counter(b.svc.met.witnessAnswered, "cosigned"); n < 2 {
		t.Fatalf("b answered %v co-signatures", n)
	}
	cs, err := a.svc.Cosignatures()
	if err != nil || len(cs) != 1 || cs[0].Witness != nameB {
		t.Fatalf("Cosignatures() = %v, %v", cs, err)
	}
}

// A witness that verified a head another way (a key look-up) asks for a
// proof from that head; the directory sends one and gets co-signed.
func TestWitnessAsksForProofFromTheHeadItHolds(t *testing.T) {
	a, b := newNode(t, nameA), newNode(t, nameB)
	dir := newFakeDir(nameA, a.key, "a").grow(5)
	if err := b.st.SetPeerDirectoryHead(nameA, headJSON(t, dir.head(t))); err != nil {
		t.Fatal(err)
	}
	dir.grow(9)
	pair(t, a, b, nil, nil) // no loop: the test asks
	a.svc.cfg.Witness = dir
	if err := a.svc.AskWitness(testCtx(t), nameB); err != nil {
		t.Fatal(err)
	}
	if n := counter(a.svc.met.witnessAsked, witnessNeedProof); n != 1 {
		t.Fatalf("need_proof answers: %v, want 1", n)
	}
	if c := keptCosignature(t, a.st, nameB); c == nil || c.Head.TreeSize != 9 {
		t.Fatalf("kept co-signature %+v", c)
	}
	if h := heldHead(t, b.st, nameA); h.TreeSize != 9 {
		t.Fatalf("b holds size %d", h.TreeSize)
	}
}

func TestWitnessRefusals(t *testing.T) {
	a, b, c := newNode(t, nameA), newNode(t, nameB), newNode(t, nameC)
	pair(t, a, b, nil, nil)
	dir := newFakeDir(nameA, a.key, "a").grow(4)
	h4 := dir.head(t)
	if r := witnessAsk(t, a, b, h4, 0, nil); r.Error != "" {
		t.Fatalf("first head: %q", r.Error)
	}

	// A head signed by another key: refused, nothing kept.
	forged := *h4
	forged.TreeSize = 6
	forged.Signature = c.key.Sign(forged.SigningInput())
	if r := witnessAsk(t, a, b, &forged, 4, dir.grow(6).proof(t, 4, 6)); r.Error != witnessBadSignature || r.Cosignature != nil {
		t.Fatalf("forged head: %+v", r)
	}
	// A third server's head, even validly signed by it: not a's to show.
	third := newFakeDir(nameC, c.key, "c").grow(2).head(t)
	if r := witnessAsk(t, a, b, third, 0, nil); r.Error != witnessWrongOrigin {
		t.Fatalf("third server's head: %+v", r)
	}
	// since must be below the head's size.
	h6 := dir.head(t)
	if r := witnessAsk(t, a, b, h6, 6, nil); r.Error != witnessMalformed {
		t.Fatalf("since = size: %+v", r)
	}
	// A proof from a size the witness does not hold.
	if r := witnessAsk(t, a, b, h6, 2, dir.proof(t, 2, 6)); r.Error != witnessNeedProof || r.TreeSize != 4 {
		t.Fatalf("proof from 2: %+v", r)
	}
	// A smaller head than the one held.
	if r := witnessAsk(t, a, b, newFakeDir(nameA, a.key, "a").grow(3).head(t), 0, nil); r.Error != witnessRollback || r.TreeSize != 4 {
		t.Fatalf("rollback: %+v", r)
	}
	if h := heldHead(t, b.st, nameA); h.TreeSize != 4 || h.RootHash != h4.RootHash {
		t.Fatalf("after refusals b holds size %d", h.TreeSize)
	}
	forks, _ := b.st.DirectoryForks()
	if len(forks) != 0 {
		t.Fatalf("refusals kept %d fork evidence", len(forks))
	}
	// The proper proof is still accepted.
	if r := witnessAsk(t, a, b, h6, 4, dir.proof(t, 4, 6)); r.Error != "" {
		t.Fatalf("proper proof: %+v", r)
	}

	// Two entries: the frame itself is malformed.
	conn := dialRaw(t, a.name, a.key, b)
	e := wire.Entry{ID: newID(), Head: headJSON(t, h6)}
	e2 := wire.Entry{ID: newID(), Head: headJSON(t, h6)}
	req := &wire.Transaction{Type: wire.TypeWitness, Entries: []wire.Entry{e, e2},
		Header: wire.Header{Origin: a.name, Destination: b.name, TxnID: newID(), CreatedAt: time.Now().UnixMilli()}}
	if _, err := wire.Sign(req, a.key); err == nil {
		t.Fatal("Sign made a witness request with two entries")
	}
	// The same as a frame: refused as malformed before the signature is
	// looked at.
	hv, err := cjson.Parse(headJSON(t, h6))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := cjson.Marshal(map[string]any{"created_at": time.Now().UnixMilli(), "destination": string(b.name), "origin": string(a.name),
		"entries":   []any{map[string]any{"head": hv, "id": e.ID}, map[string]any{"head": hv, "id": e2.ID}},
		"signature": base64.StdEncoding.EncodeToString(make([]byte, 64)), "txn_id": newID(), "type": "witness", "v": int64(1)})
	if err != nil {
		t.Fatal(err)
	}
	if ef, ok := parseErrorFrame(ask(t, conn, bad)); !ok || ef.code != string(wire.Malformed) {
		t.Fatalf("two entries: %+v %v", ef, ok)
	}
}

// witnessNode starts a federation service for name on a real store in
// dir, knowing peer.
func witnessNode(t *testing.T, name privateline.ServerName, key *serverkey.PrivateKey, dbDir string, peer *node) (*Service, *storage.DB) {
	t.Helper()
	db, err := storage.Open(storage.Options{Dir: dbDir, Key: make(privateline.Secret, 32)})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Name: name, Key: key, ListenAddr: "127.0.0.1:0", Peers: []Peer{{Name: peer.name, Key: peer.key.Public()}},
		Log: quiet, Registry: prometheus.NewRegistry()}, db)
	if err != nil {
		t.Fatal(err)
	}
	svc.lim = testLimits
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	return svc, db
}

// Same size, another root → log_fork, the evidence is kept durably (on
// a real store, across a restart) and verifies under the directory's key;
// an inconsistent proof is a fork too.
func TestWitnessForkEvidence(t *testing.T) {
	a := newNode(t, nameA)
	wkey := newKey(t)
	dbDir := filepath.Join(t.TempDir(), "w")
	svc, db := witnessNode(t, nameB, wkey, dbDir, a)
	w := &node{name: nameB, key: wkey, svc: svc}

	honest := newFakeDir(nameA, a.key, "a").grow(5)
	other := newFakeDir(nameA, a.key, "evil").grow(5)
	if r := witnessAsk(t, a, w, honest.head(t), 0, nil); r.Error != "" {
		t.Fatalf("first head: %+v", r)
	}
	if r := witnessAsk(t, a, w, other.head(t), 0, nil); r.Error != witnessFork {
		t.Fatalf("same size, other root: %+v", r)
	}
	if n := counter(svc.met.forks, keylog.ForkSameSize); n != 1 {
		t.Fatalf("fork metric %v", n)
	}
	// The held head is not replaced by the conflicting one.
	if h := heldHead(t, db, nameA); h.RootHash != honest.head(t).RootHash {
		t.Fatal("the witness replaced the head it held with the forked one")
	}
	// A larger head whose proof does not verify.
	other.grow(8)
	if r := witnessAsk(t, a, w, other.head(t), 5, other.proof(t, 5, 8)); r.Error != witnessFork {
		t.Fatalf("inconsistent proof: %+v", r)
	}
	svc.Close()
	db.Close()

	svc, db = witnessNode(t, nameB, wkey, dbDir, a)
	defer db.Close()
	defer svc.Close()
	fs, err := svc.DirectoryForks()
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 {
		t.Fatalf("after restart %d fork evidence, want 2", len(fs))
	}
	kinds := map[string]bool{}
	for _, f := range fs {
		if f.Server != nameA || f.Witness != nameB {
			t.Fatalf("evidence names %s / %s", f.Server, f.Witness)
		}
		if err := f.Verify(a.key.Public()); err != nil {
			t.Fatalf("%s evidence does not verify: %v", f.Kind, err)
		}
		if err := f.Verify(wkey.Public()); err == nil {
			t.Fatal("evidence verifies under another key")
		}
		kinds[f.Kind] = true
	}
	if !kinds[keylog.ForkSameSize] || !kinds[keylog.ForkInconsistent] {
		t.Fatalf("kinds %v", kinds)
	}
	// The honest log still gets co-signed after the restart.
	honest.grow(9)
	w.svc = svc
	if r := witnessAsk(t, a, w, honest.head(t), 5, honest.proof(t, 5, 9)); r.Error != "" {
		t.Fatalf("honest growth after the fork: %+v", r)
	}
}

// A key look-up that meets a head of the held size with another root
// keeps the evidence too: look-ups and witnessing share one record per
// peer (spec §12.5, §12.6).
func TestKeyLookupForkKeptAsEvidence(t *testing.T) {
	f := newKeyFixture(t)
	f.register(t, "alice")
	f.register(t, "bob")
	d := &node{name: dirServer, key: f.key, st: newFakeStore()}
	asker := newNode(t, nameA)
	pair(t, d, asker, func(c *Config) { c.Keys = f.dir }, nil)
	real, err := f.dir.Head()
	if err != nil {
		t.Fatal(err)
	}
	forked := keylog.TreeHead{Server: dirServer, TreeSize: real.TreeSize, RootHash: merkle.LeafHash([]byte("another log")), Timestamp: real.Timestamp}
	forked.Signature = f.key.Sign(forked.SigningInput())
	if err := asker.st.SetPeerDirectoryHead(dirServer, headJSON(t, &forked)); err != nil {
		t.Fatal(err)
	}
	if _, err := asker.svc.LookupRemote(testCtx(t), "alice@example.org", 0); keybundle.ReasonOf(err) != keybundle.ErrLogFork {
		t.Fatalf("look-up against a forked head: %v", err)
	}
	fs, err := asker.svc.DirectoryForks()
	if err != nil || len(fs) != 1 {
		t.Fatalf("forks %v %v", fs, err)
	}
	if fs[0].Kind != keylog.ForkSameSize || fs[0].Verify(f.key.Public()) != nil || fs[0].Second.RootHash != real.RootHash {
		t.Fatalf("evidence %+v", fs[0])
	}
	if h := heldHead(t, asker.st, dirServer); h.RootHash != forked.RootHash {
		t.Fatal("the held head was replaced")
	}
}
