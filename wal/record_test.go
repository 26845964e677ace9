package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// seedEnv names the environment variable that replays a randomized test of
// this package: WAL_SEED=<printed seed> go test -run <name> ./wal
const seedEnv = "WAL_SEED"

// testRand returns a generator seeded from WAL_SEED, or from a fresh seed. It
// logs the seed so that a failure can be replayed.
func testRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := rand.Uint64()
	if s := os.Getenv(seedEnv); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with %s=%d)", seed, seedEnv, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-"

func randID(rng *rand.Rand) string {
	n := 1 + rng.IntN(IDBytesMax)
	if rng.IntN(4) == 0 { // short ids are the common case
		n = 1 + rng.IntN(8)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = idAlphabet[rng.IntN(len(idAlphabet))]
	}
	return string(b)
}

// randTimeMs returns a time the decoder accepts, edges included.
func randTimeMs(rng *rand.Rand) int64 {
	switch rng.IntN(8) {
	case 0:
		return 0
	case 1:
		return 1 << 62 // the largest uvarint the decoder accepts
	case 2:
		return 1 + rng.Int64N(1<<62)
	default:
		return 1_700_000_000_000 + rng.Int64N(1_000_000_000_000)
	}
}

// randRecord returns a valid record of kind k, with random fields across their
// whole ranges.
func randRecord(rng *rand.Rand, k Kind) Record {
	r := Record{Kind: k, TimeMs: randTimeMs(rng), RequestID: randID(rng), BodyHash: rng.Uint64()}
	if rng.IntN(2) == 0 {
		r.UserID = randID(rng)
	}
	if k == KindReturn {
		r.RefID = randID(rng)
	}
	if k == KindReserve {
		r.ExpiresAtMs = 1 + rng.Int64N(1<<62)
	}
	n := 1
	if k != KindSetTotal {
		switch rng.IntN(4) {
		case 0:
			n = ItemsMax
		case 1:
			n = 1 + rng.IntN(ItemsMax)
		default:
			n = 1 + rng.IntN(4)
		}
	}
	seen := make(map[string]bool, n)
	for len(r.Items) < n {
		sku := randID(rng)
		if seen[sku] {
			continue
		}
		seen[sku] = true
		var qty int64
		if k == KindSetTotal {
			qty = rng.Int64N(2*TotalMax+1) - TotalMax
			if rng.IntN(8) == 0 {
				qty = []int64{0, TotalMax, -TotalMax}[rng.IntN(3)]
			}
		} else {
			qty = 1 + rng.Int64N(QtyMax)
			if rng.IntN(8) == 0 {
				qty = QtyMax
			}
		}
		r.Items = append(r.Items, Item{SKU: sku, Qty: qty})
	}
	if k == KindSetTotal {
		r.LimitPerUser = rng.Int64N(LimitMax + 1)
	}
	return r
}

// reseal replaces the checksum of an encoded record body (everything but the
// last 4 bytes are kept) so that a test can reach the decoder's later checks.
func reseal(body []byte) []byte {
	out := append([]byte(nil), body...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, crc32.MakeTable(crc32.Castagnoli)))
}

func allKinds() []Kind {
	var ks []Kind
	for k := KindSetTotal; k < kindEnd; k++ {
		ks = append(ks, k)
	}
	return ks
}

func TestKindString(t *testing.T) {
	want := []string{"set_total", "restock", "deduct", "reserve", "confirm", "cancel", "expire", "return"}
	for i, k := range allKinds() {
		if k.String() != want[i] {
			t.Errorf("Kind(%d).String() = %q, want %q", k, k.String(), want[i])
		}
	}
	for _, k := range []Kind{0, kindEnd, 255} {
		if got, want := k.String(), fmt.Sprintf("kind(%d)", k); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	rng := testRand(t)
	const perKind = 2000
	var dec Record
	for _, k := range allKinds() {
		for i := 0; i < perKind; i++ {
			r := randRecord(rng, k)
			if err := r.Validate(); err != nil {
				t.Fatalf("generated record invalid: %v\n%+v", err, r)
			}
			prefix := []byte("prefix")
			b := r.Encode(append([]byte(nil), prefix...))
			if !strings.HasPrefix(string(b), string(prefix)) {
				t.Fatalf("Encode did not append to dst")
			}
			b = b[len(prefix):]
			if len(b) > RecordBytesMax {
				t.Fatalf("%s record is %d bytes > RecordBytesMax %d", k, len(b), RecordBytesMax)
			}
			if err := dec.Decode(b); err != nil { // dec reuses Items across iterations
				t.Fatalf("Decode(Encode(r)): %v\n%+v", err, r)
			}
			if !reflect.DeepEqual(dec, r) {
				t.Fatalf("round trip changed the record:\n got %+v\nwant %+v", dec, r)
			}
			// Decode copies: scribbling over the input changes nothing.
			for j := range b {
				b[j] = 0
			}
			if !reflect.DeepEqual(dec, r) {
				t.Fatalf("decoded record shares memory with its input")
			}
		}
	}
}

// TestRecordBytesMax checks that the largest record the limits allow fits in
// RecordBytesMax and decodes.
func TestRecordBytesMax(t *testing.T) {
	long := strings.Repeat("x", IDBytesMax)
	r := Record{Kind: KindReturn, TimeMs: 1 << 62, RequestID: long, RefID: long, UserID: long, BodyHash: ^uint64(0)}
	for i := 0; i < ItemsMax; i++ {
		sku := fmt.Sprintf("%02d", i) + long[2:]
		r.Items = append(r.Items, Item{SKU: sku, Qty: QtyMax})
	}
	b := r.Encode(nil)
	if len(b) > RecordBytesMax {
		t.Fatalf("largest return record is %d bytes > RecordBytesMax %d", len(b), RecordBytesMax)
	}
	var d Record
	if err := d.Decode(b); err != nil {
		t.Fatalf("Decode largest record: %v", err)
	}
}

func TestValidateRejects(t *testing.T) {
	long := strings.Repeat("a", IDBytesMax+1)
	base := func(k Kind) Record {
		r := Record{Kind: k, TimeMs: 1, RequestID: "req-1", UserID: "u1", Items: []Item{{"sku-1", 1}}}
		switch k {
		case KindReturn:
			r.RefID = "sale-1"
		case KindReserve:
			r.ExpiresAtMs = 2
		case KindSetTotal:
			r.LimitPerUser = 5
		}
		return r
	}
	many := func(n int) []Item {
		items := make([]Item, n)
		for i := range items {
			items[i] = Item{SKU: fmt.Sprintf("s%d", i), Qty: 1}
		}
		return items
	}
	cases := []struct {
		name string
		kind Kind
		edit func(r *Record)
	}{
		{"kind 0", KindDeduct, func(r *Record) { r.Kind = 0 }},
		{"kind past end", KindDeduct, func(r *Record) { r.Kind = kindEnd }},
		{"kind 255", KindDeduct, func(r *Record) { r.Kind = 255 }},
		{"negative time", KindDeduct, func(r *Record) { r.TimeMs = -1 }},
		{"negative expiry", KindReserve, func(r *Record) { r.ExpiresAtMs = -1 }},
		{"reserve without expiry", KindReserve, func(r *Record) { r.ExpiresAtMs = 0 }},
		{"expiry on deduct", KindDeduct, func(r *Record) { r.ExpiresAtMs = 5 }},
		{"expiry on confirm", KindConfirm, func(r *Record) { r.ExpiresAtMs = 5 }},
		{"expiry on set_total", KindSetTotal, func(r *Record) { r.ExpiresAtMs = 5 }},
		{"limit on deduct", KindDeduct, func(r *Record) { r.LimitPerUser = 1 }},
		{"limit on restock", KindRestock, func(r *Record) { r.LimitPerUser = 1 }},
		{"negative limit", KindSetTotal, func(r *Record) { r.LimitPerUser = -1 }},
		{"limit over max", KindSetTotal, func(r *Record) { r.LimitPerUser = LimitMax + 1 }},
		{"empty request id", KindDeduct, func(r *Record) { r.RequestID = "" }},
		{"long request id", KindDeduct, func(r *Record) { r.RequestID = long }},
		{"request id with space", KindDeduct, func(r *Record) { r.RequestID = "a b" }},
		{"request id with slash", KindDeduct, func(r *Record) { r.RequestID = "a/b" }},
		{"request id non-ascii", KindDeduct, func(r *Record) { r.RequestID = "caf\u00e9" }},
		{"request id with NUL", KindDeduct, func(r *Record) { r.RequestID = "a\x00" }},
		{"ref on deduct", KindDeduct, func(r *Record) { r.RefID = "sale-1" }},
		{"ref on reserve", KindReserve, func(r *Record) { r.RefID = "sale-1" }},
		{"ref on cancel", KindCancel, func(r *Record) { r.RefID = "sale-1" }},
		{"return without ref", KindReturn, func(r *Record) { r.RefID = "" }},
		{"return with long ref", KindReturn, func(r *Record) { r.RefID = long }},
		{"return with bad ref", KindReturn, func(r *Record) { r.RefID = "x y" }},
		{"long user id", KindDeduct, func(r *Record) { r.UserID = long }},
		{"bad user id", KindDeduct, func(r *Record) { r.UserID = "u#1" }},
		{"no items", KindDeduct, func(r *Record) { r.Items = nil }},
		{"empty items", KindDeduct, func(r *Record) { r.Items = []Item{} }},
		{"too many items", KindDeduct, func(r *Record) { r.Items = many(ItemsMax + 1) }},
		{"set_total with two items", KindSetTotal, func(r *Record) { r.Items = many(2) }},
		{"set_total with no items", KindSetTotal, func(r *Record) { r.Items = nil }},
		{"empty sku", KindDeduct, func(r *Record) { r.Items[0].SKU = "" }},
		{"long sku", KindDeduct, func(r *Record) { r.Items[0].SKU = long }},
		{"bad sku", KindDeduct, func(r *Record) { r.Items[0].SKU = "s\n" }},
		{"duplicate sku", KindDeduct, func(r *Record) { r.Items = []Item{{"a", 1}, {"b", 2}, {"a", 3}} }},
		{"qty 0 deduct", KindDeduct, func(r *Record) { r.Items[0].Qty = 0 }},
		{"qty 0 restock", KindRestock, func(r *Record) { r.Items[0].Qty = 0 }},
		{"qty negative", KindReserve, func(r *Record) { r.Items[0].Qty = -1 }},
		{"qty over max", KindReturn, func(r *Record) { r.Items[0].Qty = QtyMax + 1 }},
		{"qty min int", KindExpire, func(r *Record) { r.Items[0].Qty = -1 << 63 }},
		{"qty bad in later item", KindDeduct, func(r *Record) { r.Items = []Item{{"a", 1}, {"b", 0}} }},
		{"total change over max", KindSetTotal, func(r *Record) { r.Items[0].Qty = TotalMax + 1 }},
		{"total change under min", KindSetTotal, func(r *Record) { r.Items[0].Qty = -TotalMax - 1 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := base(c.kind)
			if err := r.Validate(); err != nil {
				t.Fatalf("base record invalid: %v", err)
			}
			c.edit(&r)
			err := r.Validate()
			if err == nil {
				t.Fatalf("Validate accepted %+v", r)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Validate error %v does not wrap ErrCorrupt", err)
			}
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("Encode did not panic on %+v", r)
					}
				}()
				r.Encode(nil)
			}()
		})
	}
}

func TestValidateAcceptsEdges(t *testing.T) {
	long := strings.Repeat("Z", IDBytesMax)
	ok := []Record{
		{Kind: KindSetTotal, RequestID: long, Items: []Item{{long, 0}}},                               // limit-only change
		{Kind: KindSetTotal, RequestID: "r", Items: []Item{{"s", -TotalMax}}, LimitPerUser: LimitMax}, // edges
		{Kind: KindDeduct, RequestID: idAlphabet[:IDBytesMax], Items: []Item{{"s", QtyMax}}},
		{Kind: KindReturn, RequestID: "r", RefID: "s", UserID: "u", Items: []Item{{"s", 1}}},
		{Kind: KindReserve, RequestID: "r", ExpiresAtMs: 1, Items: []Item{{"s", 1}}},
	}
	for _, r := range ok {
		if err := r.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", r, err)
		}
	}
}

// validSamples returns one small valid encoded record per kind.
func validSamples(rng *rand.Rand) [][]byte {
	var out [][]byte
	for _, k := range allKinds() {
		r := randRecord(rng, k)
		if len(r.Items) > 4 {
			r.Items = r.Items[:4]
		}
		out = append(out, r.Encode(nil))
	}
	return out
}

func TestDecodeRejectsByteFlips(t *testing.T) {
	rng := testRand(t)
	var d Record
	for _, b := range validSamples(rng) {
		for i := range b {
			orig := b[i]
			for x := 1; x < 256; x++ {
				b[i] = orig ^ byte(x)
				if err := d.Decode(b); err == nil {
					t.Fatalf("Decode accepted %x (byte %d xor %#x)", b, i, x)
				} else if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Decode error %v does not wrap ErrCorrupt", err)
				}
			}
			b[i] = orig
		}
		if err := d.Decode(b); err != nil {
			t.Fatalf("restored record does not decode: %v", err)
		}
	}
}

func TestDecodeRejectsTruncationAndTrailing(t *testing.T) {
	rng := testRand(t)
	var d Record
	for _, b := range validSamples(rng) {
		for n := 0; n < len(b); n++ {
			if err := d.Decode(b[:n]); err == nil || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode of %d-byte prefix of a %d-byte record: %v", n, len(b), err)
			}
			// A truncated body with a valid checksum: the decoder's field checks.
			if n >= 2 && n != len(b)-4 { // b[:len(b)-4] is the whole body
				if err := d.Decode(reseal(b[:n])); err == nil || !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Decode of resealed %d-byte body prefix: %v", n, err)
				}
			}
		}
		body := b[:len(b)-4]
		for _, extra := range [][]byte{{0}, {1, 2, 3}, body} {
			trailing := reseal(append(append([]byte(nil), body...), extra...))
			err := d.Decode(trailing)
			if err == nil || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode with %d trailing bytes (valid checksum): %v", len(extra), err)
			}
		}
		if err := d.Decode(append(append([]byte(nil), b...), 0)); err == nil {
			t.Fatalf("Decode accepted a trailing byte after the checksum")
		}
	}
}

func TestDecodeRejectsResealedBadFields(t *testing.T) {
	r := Record{Kind: KindDeduct, TimeMs: 5, RequestID: "req", UserID: "u", Items: []Item{{"sku", 2}}}
	good := r.Encode(nil)
	body := good[:len(good)-4]
	// Offsets in body: 0 version, 1 kind, 2 time (1 byte), 3 len(req), 4..6 "req",
	// 7 len(ref), 8 len(user), 9 "u", 10..17 hash, 18 expiry, 19 limit, 20 count,
	// 21 len(sku), 22..24 "sku", 25 qty.
	edit := func(f func(b []byte) []byte) []byte {
		return reseal(f(append([]byte(nil), body...)))
	}
	cases := map[string][]byte{
		"version 0":         edit(func(b []byte) []byte { b[0] = 0; return b }),
		"version 2":         edit(func(b []byte) []byte { b[0] = 2; return b }),
		"kind 0":            edit(func(b []byte) []byte { b[1] = 0; return b }),
		"kind 9":            edit(func(b []byte) []byte { b[1] = 9; return b }),
		"request len 65":    edit(func(b []byte) []byte { b[3] = IDBytesMax + 1; return b }),
		"request len 0":     edit(func(b []byte) []byte { return append(b[:3:3], append([]byte{0}, b[7:]...)...) }),
		"request bad char":  edit(func(b []byte) []byte { b[4] = ' '; return b }),
		"ref on deduct":     edit(func(b []byte) []byte { return append(b[:7:7], append([]byte{1, 'x'}, b[8:]...)...) }),
		"expiry on deduct":  edit(func(b []byte) []byte { b[18] = 1; return b }),
		"limit on deduct":   edit(func(b []byte) []byte { b[19] = 1; return b }),
		"zero items":        edit(func(b []byte) []byte { b[20] = 0; return b[:21] }),
		"count 65":          edit(func(b []byte) []byte { b[20] = ItemsMax + 1; return b }),
		"count 255":         edit(func(b []byte) []byte { b[20] = 255; return b }),
		"count 2, one item": edit(func(b []byte) []byte { b[20] = 2; return b }),
		"qty 0":             edit(func(b []byte) []byte { b[25] = 0; return b }),
		"qty -1":            edit(func(b []byte) []byte { b[25] = 1; return b }),
		"time overflow": edit(func(b []byte) []byte {
			return append(b[:2:2], append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, b[3:]...)...)
		}),
		"time above 2^62":  edit(func(b []byte) []byte { return append(binary.AppendUvarint(b[:2:2], 1<<62+1), b[3:]...) }),
		"unterminated var": edit(func(b []byte) []byte { return append(b[:25:25], 0x80) }),
	}
	var d Record
	if err := d.Decode(good); err != nil {
		t.Fatalf("good record: %v", err)
	}
	for name, b := range cases {
		if err := d.Decode(b); err == nil {
			t.Errorf("%s: Decode accepted %x as %+v", name, b, d)
		} else if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %v does not wrap ErrCorrupt", name, err)
		}
	}
	if err := d.Decode(make([]byte, RecordBytesMax+1)); err == nil {
		t.Errorf("Decode accepted %d bytes", RecordBytesMax+1)
	}
}

// TestEncodeDecodeAgree checks the contract "no record that Decode would
// refuse is ever written": a record Validate accepts must decode.
func TestEncodeDecodeAgree(t *testing.T) {
	cases := []Record{
		{Kind: KindDeduct, TimeMs: 1<<62 + 1, RequestID: "r", Items: []Item{{"s", 1}}},
		{Kind: KindReserve, TimeMs: 1, ExpiresAtMs: 1<<63 - 1, RequestID: "r", Items: []Item{{"s", 1}}},
	}
	for _, r := range cases {
		if r.Validate() != nil {
			continue // refused up front: consistent
		}
		var d Record
		if err := d.Decode(r.Encode(nil)); err != nil {
			t.Fatalf("Validate accepts a record that Decode refuses: %+v: %v", r, err)
		}
	}
}

// TestDecodeNonMinimalVarint: the format is canonical, so a varint padded
// with continuation bytes (behind a valid checksum) is refused. FuzzDecode
// relies on it: encode(decode(x)) == x.
func TestDecodeNonMinimalVarint(t *testing.T) {
	r := Record{Kind: KindDeduct, TimeMs: 5, RequestID: "req", Items: []Item{{"sku", 2}}}
	good := r.Encode(nil)
	padded := reseal(append([]byte{good[0], good[1], 0x85, 0x00}, good[3:len(good)-4]...))
	var d Record
	err := d.Decode(padded)
	if err == nil {
		t.Fatalf("non-minimal varint accepted: %x and %x both decode to %+v", good, padded, d)
	}
}

func TestValidID(t *testing.T) {
	for _, s := range []string{"a", "A-b_c.d:e", strings.Repeat("9", IDBytesMax)} {
		if !ValidID(s) {
			t.Errorf("ValidID(%q) = false", s)
		}
	}
	for _, s := range []string{"", strings.Repeat("9", IDBytesMax+1), " ", "a,b", "a\x7f", "\xff", "é"} {
		if ValidID(s) {
			t.Errorf("ValidID(%q) = true", s)
		}
	}
}

func TestKeyOrder(t *testing.T) {
	rng := testRand(t)
	for i := 0; i < 10000; i++ {
		a, b := rng.Uint64N(SeqMax+1), rng.Uint64N(SeqMax+1)
		ka, kb := Key(a), Key(b)
		if len(ka) != 8 || binary.BigEndian.Uint64(ka) != a {
			t.Fatalf("Key(%d) = %x", a, ka)
		}
		if (a < b) != (string(ka) < string(kb)) {
			t.Fatalf("Key order differs from seq order: %d %d", a, b)
		}
	}
	if string(Key(SeqMax)) >= string(metaFloorKey) {
		t.Fatalf("meta key %q sorts before the last record key", metaFloorKey)
	}
}
