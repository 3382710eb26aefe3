package storage

import (
	"bytes"
	"strings"
	"testing"
)

// TestValueSeparation: an envelope record (a few KB) is written to a blob
// file when the memtable is flushed, so compactions do not copy it again;
// small records stay in the tables. Every record reads back the same
// after a reopen and after a compaction of the whole keyspace.
func TestValueSeparation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		us := createUsers(t, e.db, "ann", "ben")
		ann, ben := us[0], us[1]
		big := newMsgID()
		dl := &Delivery{MsgID: big, Sender: rcpt(ann), Recipients: []Recipient{rcpt(ben)},
			Raw: []byte(`{"id":"` + big + `","pad":"` + strings.Repeat("x", 3*SeparateValuesFrom) + `"}`)}
		if _, _, err := e.db.Deliver(dl); err != nil {
			t.Fatal(err)
		}
		if err := e.db.db.Flush(); err != nil {
			t.Fatal(err)
		}
		m := e.db.db.Metrics()
		if m.BlobFiles.LiveCount == 0 || m.BlobFiles.ValueSize < uint64(3*SeparateValuesFrom) {
			t.Fatalf("after a flush: %d blob files holding %d bytes; want the envelope record in one", m.BlobFiles.LiveCount, m.BlobFiles.ValueSize)
		}
		// The users, sessions, counters and index entries are small: the
		// blob files hold little more than the one record.
		if m.BlobFiles.ValueSize > uint64(5*SeparateValuesFrom) {
			t.Fatalf("blob files hold %d bytes for one %d-byte record: small values were separated too", m.BlobFiles.ValueSize, len(dl.Raw))
		}
		check := func(when string) {
			t.Helper()
			if got := rawOf(t, e.db, big); !bytes.Equal(got, dl.Raw) {
				t.Fatalf("%s: the envelope record reads back %d bytes, want the %d sent", when, len(got), len(dl.Raw))
			}
			if got := mailIDs(t, e.db, ben, rcpt(ann).Address); len(got) != 1 || got[0] != big {
				t.Fatalf("%s: ben's mailbox with ann: %v", when, got)
			}
		}
		check("after the flush")
		e.reopen()
		check("after a reopen")
		if err := e.db.compactRange([]byte{0}, []byte{0xff}); err != nil {
			t.Fatal(err)
		}
		check("after a compaction")
	})
}
