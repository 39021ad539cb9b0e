package main

import "testing"

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{7}, 7}, {[]float64{9, 1, 5}, 5}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	in := []float64{3, 1, 2}
	median(in)
	if in[0] != 3 {
		t.Error("median sorted its argument")
	}
}

// Each column is the median of its own rounds, errors add up, and the
// allocations are n/a when any round had none (an old binary without metrics).
func TestSummarizeRoundsAndRatios(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	run := func(rps, p99, cpu float64, allocs *float64, errs int) throughputRun {
		return throughputRun{ReqPerSec: rps, Latency: latencies{P50: p99 / 4, P99: p99}, ServerCPUms: cpu, PGCPUms: cpu / 2, AllocsPerReq: allocs, Errors: errs}
	}
	base := summarizeRounds([]throughputRun{run(100, 90, 4, nil, 0), run(120, 60, 5, nil, 1), run(80, 300, 3.5, nil, 0)})
	cur := summarizeRounds([]throughputRun{run(400, 20, 1, f(3000), 0), run(390, 25, 1.2, f(3100), 0), run(450, 15, 0.9, f(2900), 2)})
	if base.ReqPerSec != 100 || base.P99 != 90 || base.ServerCPUms != 4 || base.Errors != 1 || base.AllocsPerReq != nil {
		t.Errorf("base: %+v", base)
	}
	if cur.ReqPerSec != 400 || cur.P99 != 20 || cur.PGCPUms != 0.5 || cur.Errors != 2 || cur.AllocsPerReq == nil || *cur.AllocsPerReq != 3000 {
		t.Errorf("new: %+v", cur)
	}
	r := compare(base, cur)
	if r.Throughput != 4 || r.P99 != 20.0/90 || r.ServerCPU != 0.25 || r.PGCPU != 0.25 || r.Allocs != nil {
		t.Errorf("ratios: %+v", r)
	}
	if r := compare(cur, cur); r.Allocs == nil || *r.Allocs != 1 || r.Throughput != 1 {
		t.Errorf("ratios to itself: %+v", r)
	}
	if mixed := summarizeRounds([]throughputRun{run(1, 1, 1, f(5), 0), run(1, 1, 1, nil, 0)}); mixed.AllocsPerReq != nil {
		t.Errorf("allocations with a round of none: %v", *mixed.AllocsPerReq)
	}
}
