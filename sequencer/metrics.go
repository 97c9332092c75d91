package sequencer

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the write path's Prometheus measurements.
type Metrics struct {
	appended        prometheus.Counter
	batchEvents     prometheus.Histogram
	commitSeconds   prometheus.Histogram
	commitFailures  prometheus.Counter
	queued          prometheus.Gauge
	pushback        prometheus.Counter
	integrityAlarms *prometheus.CounterVec
	checkpoints     prometheus.Counter
	checkpointAge   *prometheus.GaugeVec
	checkpointStall *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stele_events_appended_total", Help: "Events durably appended to a log."}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "stele_commit_batch_events", Help: "Events per committed transaction (group commit size).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "stele_commit_seconds", Help: "Time to stage and durably commit one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		commitFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stele_commit_failures_total", Help: "Batches whose commit failed; none of their events was acknowledged."}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stele_write_queue_events", Help: "Events accepted and waiting for their commit."}),
		pushback: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stele_write_pushback_total", Help: "Append requests refused with 503 because the write queue was full."}),
		integrityAlarms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stele_integrity_alarms_total", Help: "Integrity failures that stopped a workspace's appends or checkpoints."}, []string{"workspace"}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stele_checkpoints_signed_total", Help: "Checkpoints signed and stored."}),
		checkpointAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stele_checkpoint_lag_seconds", Help: "Age of the oldest committed event not yet covered by a signed checkpoint (0 when all are covered)."}, []string{"workspace"}),
		checkpointStall: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stele_checkpoint_stalls_total", Help: "Checkpoint attempts that were refused (clock went back, inconsistency, store error)."}, []string{"workspace", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.appended, m.batchEvents, m.commitSeconds, m.commitFailures, m.queued, m.pushback,
			m.integrityAlarms, m.checkpoints, m.checkpointAge, m.checkpointStall)
	}
	return m
}
