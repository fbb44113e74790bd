package sqlmetric

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
)

// Limits counted by Metrics, as the label "limit" of
// kedascalers_limit_refusals_total: the variable that set them.
const (
	// LimitQueryBytes is a query or parameter longer than MAX_QUERY_BYTES.
	LimitQueryBytes = "MAX_QUERY_BYTES"
	// LimitRowBytes is a row or value larger than MAX_ROW_BYTES.
	LimitRowBytes = "MAX_ROW_BYTES"
	// LimitRows is a query returning more than MAX_ROWS rows.
	LimitRows = "MAX_ROWS"
	// LimitText is text the database protocol cannot carry (NUL, invalid
	// UTF-8).
	LimitText = "text"
)

// Metrics are the SQL scalers' own Prometheus metrics. A nil *Metrics
// counts nothing.
type Metrics struct {
	refusedTotal *prometheus.CounterVec
	reg          prometheus.Registerer
}

// NewMetrics counts the SQL limits in the scaler's
// kedascalers_limit_refusals_total of reg (nil: registered nowhere).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	refused, err := metrics.Refusals(reg)
	if err != nil {
		return nil, err
	}
	m := &Metrics{refusedTotal: refused, reg: reg}
	for _, l := range []string{LimitQueryBytes, LimitRowBytes, LimitRows, LimitText} {
		m.refusedTotal.WithLabelValues(l)
	}
	return m, nil
}

// Refused counts one refusal by limit.
func (m *Metrics) Refused(limit string) { m.refused(limit) }

func (m *Metrics) refused(limit string) {
	if m != nil {
		m.refusedTotal.WithLabelValues(limit).Inc()
	}
}

// Pools of a connection, as the label "pool" of
// kedascalers_sql_pool_connections.
const (
	// PoolValue serves value reads (query, queryName).
	PoolValue = "value"
	// PoolTarget serves background target reads (targetQuery).
	PoolTarget = "target"
)

// AddPool exports the connections of one pool, as stats reports them, as
// kedascalers_sql_pool_connections{connection, pool, state}.
func (m *Metrics) AddPool(connection, pool string, stats func() (inUse, idle int)) {
	if m == nil || m.reg == nil {
		return
	}
	for _, state := range []string{"in_use", "idle"} {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "kedascalers_sql_pool_connections",
			Help:        "Connections of the scaler's database pools, by connection name, pool (value or target) and state (in_use or idle).",
			ConstLabels: prometheus.Labels{"connection": connection, "pool": pool, "state": state},
		}, func() float64 {
			inUse, idle := stats()
			if state == "in_use" {
				return float64(inUse)
			}
			return float64(idle)
		}))
	}
}
