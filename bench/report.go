package bench

import (
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Label is a result's row label: the target, and for Redis its appendfsync.
func (r *Result) Label() string {
	if r.AppendFsync != "" {
		return r.Target + "(" + r.AppendFsync + ")"
	}
	return r.Target
}

// WriteTable writes the results as an aligned text table.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tscenario\treq/s\tok/s\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\toversold\tverify\tclient cores\tserver cores\treq/server-cpu-s\t")
	for i := range results {
		r := &results[i]
		if r.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\tskipped\t-\t-\t-\t\n", r.Label(), r.Scenario)
			continue
		}
		server := "shared"
		switch {
		case r.ServerCores >= 0:
			server = fmt.Sprintf("%.2f", r.ServerCores)
		case r.ServerCPU == "unknown":
			server = "?"
		}
		perCPU := "-"
		if r.ServerOpsPerCPUSecond > 0 {
			perCPU = fmt.Sprintf("%.0f", r.ServerOpsPerCPUSecond)
			if r.ServerCores < 0 {
				perCPU += "*"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%d\t%s\t%.2f\t%s\t%s\t\n",
			r.Label(), r.Scenario, r.OpsPerSec, r.SuccessesPerSec, r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs,
			r.Errors, r.Oversold, r.Verification, r.ClientCores, server, perCPU)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("bench: table: %w", err)
	}
	var notes []string
	for i := range results {
		r := &results[i]
		switch {
		case r.Skipped != "":
			notes = append(notes, fmt.Sprintf("%s: skipped: %s", r.Label(), r.Skipped))
		case r.Failed():
			notes = append(notes, fmt.Sprintf("%s: FAIL: %s", r.Label(), r.VerifyDetail))
		}
		if r.FirstError != "" {
			notes = append(notes, fmt.Sprintf("%s: first error: %s", r.Label(), r.FirstError))
		}
		if r.Dropped > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d scheduled flows never sent (the target fell behind the rate); "+
				"their wait until the end of the run is in the latencies", r.Label(), r.Dropped))
		}
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	if len(results) > 0 {
		r := &results[0]
		fmt.Fprintf(w, "%s loop, %d workers, %d SKUs, stock %d, qty %d, %d buyers, seed %d. "+
			"Server cores: the server process's CPU time / wall time (shared: in-process, included in client cores; *: per CPU-second of the whole process).\n",
			r.Mode, r.Concurrency, r.SKUs, r.Stock, r.Qty, r.Buyers, r.Seed)
	}
	return nil
}

// jsonReport is the --json file's shape.
type jsonReport struct {
	Results []Result `json:"results"`
}

// CreateParentDir creates the directory that is to hold the output file path
// (and its parents) when it does not exist. WriteJSON and WritePNG call it; a
// caller that calls it before a run learns of a path that cannot be created
// before the load instead of after it.
func CreateParentDir(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("bench: output directory of %s: %w", path, err)
	}
	return nil
}

// WriteJSON writes {"results": [...]} to path, creating its directory if
// needed.
func WriteJSON(path string, results []Result) error {
	b, err := json.MarshalIndent(jsonReport{Results: results}, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: json: %w", err)
	}
	if err := CreateParentDir(path); err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: json: %w", err)
	}
	return nil
}

// Chart dimensions.
const (
	chartWidth  = 10 * vg.Inch
	chartHeight = 8 * vg.Inch
	barWidth    = vg.Length(14)
	// latencyFloorMs keeps the log-scale latency axis above zero.
	latencyFloorMs = 0.001
)

// WritePNG draws throughput (requests/s and successes/s) and latency
// percentiles (p50, p99, p99.9; log scale) per target run to path, creating
// its directory if needed.
func WritePNG(path string, results []Result) error {
	var rows []Result
	for _, r := range results {
		if r.Skipped == "" {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return fmt.Errorf("bench: png: no results to draw")
	}
	names := make([]string, len(rows))
	for i := range rows {
		names[i] = rows[i].Label()
	}
	title := fmt.Sprintf("%s scenario, %s loop, %d workers", rows[0].Scenario, rows[0].Mode, rows[0].Concurrency)

	tp := plot.New()
	tp.Title.Text = "Throughput: " + title
	tp.Y.Label.Text = "per second"
	if err := addBars(tp, rows, []series{
		{"requests/s", func(r *Result) float64 { return r.OpsPerSec }},
		{"successes/s", func(r *Result) float64 { return r.SuccessesPerSec }},
	}); err != nil {
		return err
	}
	tp.NominalX(names...)
	tp.Legend.Top = true

	lp := plot.New()
	lp.Title.Text = "Latency percentiles (ms, log scale)"
	lp.Y.Label.Text = "ms"
	lp.Y.Scale = plot.LogScale{}
	lp.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	for i, s := range []series{
		{"p50", func(r *Result) float64 { return r.P50Ms }},
		{"p99", func(r *Result) float64 { return r.P99Ms }},
		{"p99.9", func(r *Result) float64 { return r.P999Ms }},
	} {
		xys := make(plotter.XYs, len(rows))
		for j := range rows {
			xys[j].X, xys[j].Y = float64(j), math.Max(s.val(&rows[j]), latencyFloorMs)
		}
		lines, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return fmt.Errorf("bench: png: %s: %w", s.name, err)
		}
		lines.Color, points.Color = chartColors[i%len(chartColors)], chartColors[i%len(chartColors)]
		points.Shape = draw.CircleGlyph{}
		lp.Add(lines, points)
		lp.Legend.Add(s.name, lines, points)
	}
	lp.NominalX(names...)
	lp.Legend.Top = true
	for _, p := range []*plot.Plot{tp, lp} {
		p.X.Min, p.X.Max = -0.6, float64(len(rows))-0.4
	}

	img := vgimg.New(chartWidth, chartHeight)
	dc := draw.New(img)
	plots := [][]*plot.Plot{{tp}, {lp}}
	canvases := plot.Align(plots, draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Inch / 4, PadX: vg.Inch / 8, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8}, dc)
	tp.Draw(canvases[0][0])
	lp.Draw(canvases[1][0])
	if err := CreateParentDir(path); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: png: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("bench: png: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: png: %w", err)
	}
	return nil
}

type series struct {
	name string
	val  func(*Result) float64
}

var chartColors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
}

// addBars adds one group of bars per series, side by side at each target.
func addBars(p *plot.Plot, rows []Result, ss []series) error {
	for i, s := range ss {
		vals := make(plotter.Values, len(rows))
		for j := range rows {
			vals[j] = s.val(&rows[j])
		}
		b, err := plotter.NewBarChart(vals, barWidth)
		if err != nil {
			return fmt.Errorf("bench: png: %s: %w", s.name, err)
		}
		b.LineStyle.Width = 0
		b.Color = chartColors[i%len(chartColors)]
		b.Offset = barWidth * vg.Length(float64(i)-float64(len(ss)-1)/2)
		p.Add(b)
		p.Legend.Add(s.name, b)
	}
	return nil
}

// Summary lines for the standard comparison: each ratio the issue asks for,
// with the figures it comes from. Missing rows are skipped.
func CompareSummary(results []Result) []string {
	find := func(label string) *Result {
		for i := range results {
			if results[i].Label() == label && results[i].Skipped == "" && results[i].OpsPerSec > 0 {
				return &results[i]
			}
		}
		return nil
	}
	// A row that failed, or whose requests did not all get an answer, does
	// not stand for its design: its rate would compare errors.
	unfit := func(r *Result) string {
		switch {
		case r.Failed():
			return fmt.Sprintf("%s failed verification", r.Label())
		case r.Errors > 0:
			return fmt.Sprintf("%s had %d errors", r.Label(), r.Errors)
		case r.Dropped > 0:
			return fmt.Sprintf("%s dropped %d flows", r.Label(), r.Dropped)
		}
		return ""
	}
	var out []string
	ratio := func(a, b string, want float64) {
		ra, rb := find(a), find(b)
		if ra == nil || rb == nil {
			return
		}
		for _, r := range []*Result{ra, rb} {
			if why := unfit(r); why != "" {
				out = append(out, fmt.Sprintf("%s / %s: not compared (%s)", a, b, why))
				return
			}
		}
		got := ra.OpsPerSec / rb.OpsPerSec
		mark := "met"
		if got < want {
			mark = "NOT met"
		}
		out = append(out, fmt.Sprintf("%s / %s = %.2fx (goal >= %.2fx: %s)", a, b, got, want, mark))
	}
	ratio("http", "redis-lua(always)", 1.5)
	ratio("http", "redis-lua(everysec)", 1.0)
	ratio("http", "mysql-update", 10)
	ratio("http", "noop", 0.7)
	ratio("engine", "redis-lua(everysec)", 10)
	if h, r := find("http"), find("redis-lua(always)"); h != nil && r != nil && unfit(h) == "" && unfit(r) == "" {
		mark := "met"
		if h.P99Ms > r.P99Ms {
			mark = "NOT met"
		}
		out = append(out, fmt.Sprintf("p99 http %.3f ms vs redis-lua(always) %.3f ms (goal: no worse: %s)", h.P99Ms, r.P99Ms, mark))
	}
	return out
}
