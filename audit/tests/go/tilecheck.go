// tilecheck audits a directory of C2SP tlog-tiles with Go's
// golang.org/x/mod/sumdb/tlog and sumdb/note, code Night Core did not write:
// it verifies the checkpoint's signature, reads hash tiles through
// tlog.TileHashReader (which checks every tile against the signed tree),
// recomputes the tree hash, and proves every STEP-th entry of the entry
// bundles (and the last one) included under the signed root.
//
// Go's tiles are the same hashes under tile/8/<L>/<N>; C2SP drops the height.
//
// Usage: tilecheck DIR VERIFIER_KEY STEP
// Prints "ok SIZE PROVED" and exits 0, or prints the error and exits 1.
package main

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return 8 }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := os.ReadFile(filepath.Join(d.dir, c2spPath(t)))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (d dirTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// c2spPath maps Go's tile/8/<L>/<N>[.p/<W>] (tile/8/data/… for entries) to C2SP's.
func c2spPath(t tlog.Tile) string {
	rest := strings.TrimPrefix(t.Path(), "tile/8/")
	if strings.HasPrefix(rest, "data/") {
		return "tile/entries/" + strings.TrimPrefix(rest, "data/")
	}
	return "tile/" + rest
}

func fail(format string, args ...interface{}) {
	fmt.Printf(format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: tilecheck DIR VERIFIER_KEY STEP")
	}
	dir, vkey := os.Args[1], os.Args[2]
	step, err := strconv.ParseInt(os.Args[3], 10, 64)
	if err != nil || step < 1 {
		fail("bad STEP %q", os.Args[3])
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail("verifier key: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		fail("checkpoint: %v", err)
	}
	n, err := note.Open(raw, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		fail("checkpoint text has %d lines", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != tlog.HashSize {
		fail("checkpoint root: %v", err)
	}
	var tree tlog.Tree
	tree.N = size
	copy(tree.Hash[:], rootBytes)

	tiles := dirTiles{dir}
	hashes := tlog.TileHashReader(tree, tiles)
	th, err := tlog.TreeHash(size, hashes)
	if err != nil {
		fail("tree hash: %v", err)
	}
	if th != tree.Hash {
		fail("tree hash %v is not the checkpoint's %v", th, tree.Hash)
	}

	proved := 0
	for index := int64(0); index*256 < size; index++ {
		width := size - index*256
		if width > 256 {
			width = 256
		}
		bundle, err := tiles.ReadTiles([]tlog.Tile{{H: 8, L: -1, N: index, W: int(width)}})
		if err != nil {
			fail("entry bundle %d: %v", index, err)
		}
		data := bundle[0]
		for i := int64(0); i < width; i++ {
			if len(data) < 2 {
				fail("entry bundle %d ends before entry %d", index, i)
			}
			length := int(binary.BigEndian.Uint16(data))
			if len(data) < 2+length {
				fail("entry bundle %d: entry %d is cut short", index, i)
			}
			entry := data[2 : 2+length]
			data = data[2+length:]
			seq := index*256 + i
			if seq%step != 0 && seq != size-1 {
				continue
			}
			proof, err := tlog.ProveRecord(size, seq, hashes)
			if err != nil {
				fail("prove entry %d: %v", seq, err)
			}
			if err := tlog.CheckRecord(proof, size, tree.Hash, seq, tlog.RecordHash(entry)); err != nil {
				fail("entry %d is not in the signed tree: %v", seq, err)
			}
			proved++
		}
		if len(data) != 0 {
			fail("entry bundle %d has %d bytes after its %d entries", index, len(data), width)
		}
	}
	fmt.Printf("ok %d %d\n", size, proved)
}
