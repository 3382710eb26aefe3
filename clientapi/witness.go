package clientapi

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/keylog"
)

// Witnessing serves tree-head witnessing to clients (spec/federation.md
// §12.6, spec/e2ee.md §6.4): the co-signatures other servers made of this
// server's directory, and the fork evidence this server keeps about
// theirs. The homeserver passes *federation.Service; nil (no federation)
// answers empty lists.
type Witnessing interface {
	Cosignatures() ([]*keylog.Cosignature, error)
	DirectoryForks() ([]*keylog.ForkEvidence, error)
}

// getKeysCosignatures answers the directory's current head with the
// latest co-signature of each witness; ?size=n keeps those of the tree of
// n entries. Public, like the head.
func (a *API) getKeysCosignatures(w http.ResponseWriter, r *http.Request, _ *call) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return invalid("malformed query string")
	}
	for k := range q {
		if k != "size" {
			return invalid("unknown query parameter " + strconv.Quote(k))
		}
	}
	var size uint64
	if q.Has("size") {
		if size, err = treeSizeParam(q, "size"); err != nil {
			return err
		}
		if size == 0 {
			return invalid(`query parameter "size" must be at least 1`)
		}
	}
	h, err := a.dir.HeadAnswer()
	if err != nil {
		return err
	}
	ans := &keylog.CosignaturesAnswer{HeadAnswer: *h, Cosignatures: []*keylog.Cosignature{}}
	if a.witness != nil {
		cs, err := a.witness.Cosignatures()
		if err != nil {
			return err
		}
		for _, c := range cs {
			if size == 0 || c.Head.TreeSize == size {
				ans.Cosignatures = append(ans.Cosignatures, c)
			}
		}
	}
	writeJSON(w, http.StatusOK, ans)
	return nil
}

// getKeysForks answers the fork evidence this server keeps about other
// servers' directories. Public: it is evidence against them, signed by
// them.
func (a *API) getKeysForks(w http.ResponseWriter, r *http.Request, _ *call) error {
	if r.URL.RawQuery != "" {
		return invalid("no query parameters")
	}
	ans := &keylog.ForksAnswer{Forks: []*keylog.ForkEvidence{}}
	if a.witness != nil {
		fs, err := a.witness.DirectoryForks()
		if err != nil {
			return err
		}
		ans.Forks = fs
	}
	writeJSON(w, http.StatusOK, ans)
	return nil
}

// ForkDocuments is implemented by a Witnessing that passes on the server
// documents of servers it keeps fork evidence about (*federation.Service):
// signed by such a server's current key, a document names the keys it
// held before, under which a client that trusts only the current key
// checks evidence made before a key rotation (spec/e2ee.md §6.4).
type ForkDocuments interface {
	ForkServerDocument(server privateline.ServerName) ([]byte, error)
}

// getKeysForkDocument answers GET /api/keys/forks/document?server=name:
// the current server document of a server this server keeps fork
// evidence about, as that server serves it (404 for any other name).
// Public, like the evidence: the client checks it under its own pin.
func (a *API) getKeysForkDocument(w http.ResponseWriter, r *http.Request, _ *call) error {
	const op = "clientapi.getKeysForkDocument"
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return invalid("malformed query string")
	}
	for k := range q {
		if k != "server" {
			return invalid("unknown query parameter " + strconv.Quote(k))
		}
	}
	if len(q["server"]) != 1 {
		return invalid(`query parameter "server" is required once`)
	}
	name, err := privateline.ParseServerName(q.Get("server"))
	if err != nil {
		return invalid(`query parameter "server" is not a server name`)
	}
	fd, ok := a.witness.(ForkDocuments)
	if !ok {
		return privateline.E(op, privateline.NotExist, "this server keeps no fork evidence about "+string(name))
	}
	doc, err := fd.ForkServerDocument(name)
	if err != nil {
		return err
	}
	writeDocument(w, doc)
	return nil
}
