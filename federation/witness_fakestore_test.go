package federation

import (
	"slices"

	"github.com/privateline/privateline"
	"github.com/privateline/privateline/storage"
)

// fakeWitnessStore is the witnessing part of fakeStore (guarded by its mu).
type fakeWitnessStore struct {
	cosigs map[privateline.ServerName][]byte
	forks  map[privateline.ServerName][][]byte
}

func (f *fakeStore) Cosignature(w privateline.ServerName) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.wit.cosigs[w]), nil
}

func (f *fakeStore) SetCosignature(w privateline.ServerName, c []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.wit.cosigs == nil {
		f.wit.cosigs = map[privateline.ServerName][]byte{}
	}
	f.wit.cosigs[w] = slices.Clone(c)
	return nil
}

func (f *fakeStore) Cosignatures() ([][]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]byte
	for _, c := range f.wit.cosigs {
		out = append(out, slices.Clone(c))
	}
	return out, nil
}

func (f *fakeStore) AddDirectoryFork(server privateline.ServerName, ev []byte) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.wit.forks == nil {
		f.wit.forks = map[privateline.ServerName][][]byte{}
	}
	for _, x := range f.wit.forks[server] {
		if string(x) == string(ev) {
			return false, nil
		}
	}
	if len(f.wit.forks[server]) >= storage.MaxForksPerServer {
		return false, nil
	}
	f.wit.forks[server] = append(f.wit.forks[server], slices.Clone(ev))
	return true, nil
}

func (f *fakeStore) DirectoryForks() ([][]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]byte
	for _, fs := range f.wit.forks {
		for _, x := range fs {
			out = append(out, slices.Clone(x))
		}
	}
	return out, nil
}
