package wal

import (
	"encoding/binary"
	"fmt"
)

// ChunkVersion is the first byte of a chunk: the Pebble value that holds one
// commit group's records (see "Chunk format" in the package doc). It is part
// of the on-disk format and must not change; a value whose first byte is
// FormatVersion (1) is a lone version-1 record written before chunks existed.
const ChunkVersion byte = 2

// chunkHeaderMax is the room reserved in front of an open chunk for its
// header (version byte and record count as a uvarint); the committer writes
// the header right-aligned into it, so sealing a chunk copies nothing.
const chunkHeaderMax = 1 + binary.MaxVarintLen64

// chunkWriter builds one chunk in a reusable buffer. add is all that Append
// does per record; value seals the chunk.
type chunkWriter struct {
	buf []byte // chunkHeaderMax reserved bytes, then the framed records
	n   uint64 // records added
}

func (c *chunkWriter) reset() {
	if c.buf == nil {
		c.buf = make([]byte, chunkHeaderMax, 64<<10)
	}
	c.buf, c.n = c.buf[:chunkHeaderMax], 0
}

// size is the length the sealed chunk will have at most.
func (c *chunkWriter) size() int { return len(c.buf) }

// add frames rec (1..RecordBytesMax bytes; the caller checks) into the chunk.
func (c *chunkWriter) add(rec []byte) {
	c.buf = binary.AppendUvarint(c.buf, uint64(len(rec)))
	c.buf = append(c.buf, rec...)
	c.n++
}

// value writes the header and returns the chunk's bytes, a slice of the
// writer's buffer (valid until the next reset).
func (c *chunkWriter) value() []byte {
	var h [chunkHeaderMax]byte
	h[0] = ChunkVersion
	hn := 1 + binary.PutUvarint(h[1:], c.n)
	start := chunkHeaderMax - hn
	copy(c.buf[start:], h[:hn])
	return c.buf[start:]
}

// chunk is one stored value, checked: the records at seqs first..first+n-1.
type chunk struct {
	first, n uint64
	v1       bool   // a lone version-1 record: body is the record itself
	body     []byte // the framed records (version 2)
}

// readChunk checks the Pebble key and value of one stored value and returns
// its records. It checks all of it before any record is handed out: the key
// (8 bytes, seq 1..SeqMax), the version byte, the count (1.., minimal
// uvarint, last seq within SeqMax), and every length prefix (minimal uvarint,
// 1..RecordBytesMax, inside the value), and that exactly count records fill
// the value to its end. It does not look inside the records (Record.Decode
// does, with each record's checksum) and never allocates. Every error wraps
// ErrCorrupt.
func readChunk(key, v []byte) (chunk, error) {
	if len(key) != 8 {
		return chunk{}, fmt.Errorf("%w: key %x is not 8 bytes", ErrCorrupt, key)
	}
	c := chunk{first: binary.BigEndian.Uint64(key)}
	if c.first == 0 || c.first > SeqMax {
		return chunk{}, fmt.Errorf("%w: key %x out of range", ErrCorrupt, key)
	}
	if len(v) == 0 {
		return chunk{}, fmt.Errorf("%w: empty value at seq %d", ErrCorrupt, c.first)
	}
	switch v[0] {
	case FormatVersion:
		if len(v) > RecordBytesMax {
			return chunk{}, fmt.Errorf("%w: version-1 record of %d bytes at seq %d", ErrCorrupt, len(v), c.first)
		}
		c.v1, c.n, c.body = true, 1, v
		return c, nil
	case ChunkVersion:
	default:
		return chunk{}, fmt.Errorf("%w: value version %d at seq %d", ErrCorrupt, v[0], c.first)
	}
	n, k := binary.Uvarint(v[1:])
	if k <= 0 || k != uvarintLen(n) || n == 0 || n > SeqMax-c.first+1 {
		return chunk{}, fmt.Errorf("%w: chunk at seq %d: bad record count", ErrCorrupt, c.first)
	}
	c.n, c.body = n, v[1+k:]
	b := c.body
	for i := uint64(0); i < n; i++ {
		var err error
		if _, b, err = splitRecord(b); err != nil {
			return chunk{}, fmt.Errorf("chunk at seq %d, record %d of %d: %w", c.first, i+1, n, err)
		}
	}
	if len(b) != 0 {
		return chunk{}, fmt.Errorf("%w: chunk at seq %d: %d bytes after its %d records", ErrCorrupt, c.first, len(b), n)
	}
	return c, nil
}

// splitRecord returns the first framed record of b and the rest.
func splitRecord(b []byte) (rec, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || k != uvarintLen(n) || n == 0 || n > RecordBytesMax || n > uint64(len(b)-k) {
		return nil, nil, fmt.Errorf("%w: bad record length", ErrCorrupt)
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

// each calls fn for the records of c with from <= seq <= to, in order, and
// returns fn's first error. c must come from readChunk.
func (c *chunk) each(from, to uint64, fn func(seq uint64, rec []byte) error) error {
	if c.v1 {
		if c.first < from || c.first > to {
			return nil
		}
		return fn(c.first, c.body)
	}
	b := c.body
	for seq := c.first; seq < c.first+c.n && seq <= to; seq++ {
		rec, rest, err := splitRecord(b)
		if err != nil {
			return err // unreachable after readChunk
		}
		b = rest
		if seq >= from {
			if err := fn(seq, rec); err != nil {
				return err
			}
		}
	}
	return nil
}
