package wire

import (
	"github.com/privateline/privateline/cjson"
)

// Tree-head witnessing (spec/federation.md §12.6): the shapes of a
// "witness" request's one entry and of a "witness_answer" result. What a
// head or a co-signature says is the federation package's to check
// (keylog.ParseTreeHead, keylog.ParseWireCosignature).

// MaxWitnessProof caps the hashes of a witness entry's consistency proof
// (a proof between two trees of at most 2^64 leaves has fewer).
const MaxWitnessProof = 128

// rawObject is the parsed value of raw canonical JSON, or raw as a string
// (which Sign's own decode then refuses) if it is not JSON.
func rawObject(raw []byte) any {
	v, err := cjson.Parse(raw)
	if err != nil {
		return string(raw)
	}
	return v
}

func hashes(hs [][]byte) []any {
	out := make([]any, len(hs))
	for i, h := range hs {
		out[i] = b64.EncodeToString(h)
	}
	return out
}

// witnessEntry is {"consistency": [b64(32), …] (with "since" only),
// "head": {…}, "id", "since": n (optional)}.
func witnessEntry(e Entry) map[string]any {
	m := map[string]any{"head": rawObject(e.Head), "id": e.ID}
	if e.Since > 0 {
		m["since"] = int64(e.Since)
		m["consistency"] = hashes(e.Consistency)
	}
	return m
}

func readWitnessEntry(e *cjson.Object) Entry {
	x := Entry{ID: e.String("id", true)}
	hv := e.Object("head", true)
	if e.Err() == nil {
		b, err := cjson.Marshal(hv)
		if err != nil {
			e.Fail("head", "an object")
		}
		x.Head = b
	}
	x.Since = uint64(e.Int("since", false, 1, cjson.MaxSafeInt))
	if x.Since > 0 {
		x.Consistency = readHashes(e, "consistency", true)
	} else if e.Has("consistency") {
		e.Fail("consistency", "absent without since")
	}
	return x
}

// readHashes reads an array of at most MaxWitnessProof base64 SHA-256
// hashes (possibly empty, never nil when present).
func readHashes(e *cjson.Object, name string, required bool) [][]byte {
	a := e.Array(name, required)
	if e.Err() != nil || a == nil {
		return nil
	}
	if len(a) > MaxWitnessProof {
		e.Fail(name, "at most 128 hashes")
		return nil
	}
	out := make([][]byte, 0, len(a))
	for _, v := range a {
		s, ok := v.(string)
		h, err := b64.DecodeString(s)
		if !ok || err != nil || len(h) != 32 {
			e.Fail(name, "an array of base64 SHA-256 hashes")
			return nil
		}
		out = append(out, h)
	}
	return out
}

// readWitnessResult reads {"id", "cosignature": {…}} or {"id", "error",
// "tree_size": n (optional)}.
func readWitnessResult(e *cjson.Object) Result {
	r := Result{ID: e.String("id", true)}
	if e.Has("error") {
		r.Error = readCode(e)
		r.TreeSize = uint64(e.Int("tree_size", false, 1, cjson.MaxSafeInt))
		return r
	}
	cv := e.Object("cosignature", true)
	if e.Err() == nil {
		b, err := cjson.Marshal(cv)
		if err != nil {
			e.Fail("cosignature", "an object")
		}
		r.Cosignature = b
	}
	return r
}
