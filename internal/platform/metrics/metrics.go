// Package metrics is the server's Prometheus registry and its exposition
// handler. The registry is made in one place (New) and handed to whatever
// registers metrics on it: the Go runtime's and the process's collectors here,
// the application's series (Recorder, NewOutboxCollector) and the database
// pool's by the wiring (internal/app). Nothing is global: each registry has its
// own series, so tests in parallel each read their own.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// New returns a registry with the Go runtime collector (go_memstats_*,
// go_goroutines, go_gc_duration_seconds, ...) and the process collector
// (process_cpu_seconds_total, process_resident_memory_bytes, ...).
func New() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves reg in the Prometheus text format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
