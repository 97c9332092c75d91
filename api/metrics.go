package api

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// refusalsPending counts refusals queued to be recorded but not yet
	// appended (they are recorded off the request path).
	refusalsPending prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stele_http_requests_total", Help: "API requests by route and status."}, []string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stele_http_request_seconds", Help: "API request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route"}),
		refusalsPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stele_refusals_pending", Help: "Refusals (denials, rejected keys, failed logins) queued but not yet appended to the log."}),
	}
	reg.MustRegister(m.requests, m.latency, m.refusalsPending)
	return m
}
