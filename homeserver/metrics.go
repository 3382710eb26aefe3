package homeserver

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/privateline/privateline/storage"
)

// storageCollector exports the store's figures.
type storageCollector struct{ db *storage.DB }

var (
	descDisk        = prometheus.NewDesc("privateline_storage_disk_bytes", "Bytes the store uses on disk.", nil, nil)
	descMemtable    = prometheus.NewDesc("privateline_storage_memtable_bytes", "Bytes in memtables.", nil, nil)
	descWAL         = prometheus.NewDesc("privateline_storage_wal_bytes", "Bytes in the write-ahead log.", nil, nil)
	descCompactions = prometheus.NewDesc("privateline_storage_compactions_total", "Compactions since start.", nil, nil)
	descFlushes     = prometheus.NewDesc("privateline_storage_flushes_total", "Memtable flushes since start.", nil, nil)
	descReadAmp     = prometheus.NewDesc("privateline_storage_read_amplification", "Current read amplification.", nil, nil)
	descCache       = prometheus.NewDesc("privateline_storage_block_cache_bytes", "Bytes in the block cache.", nil, nil)
	descFileBytes   = prometheus.NewDesc("privateline_files_stored_bytes", "Bytes of the live encrypted files.", nil, nil)
	descFiles       = prometheus.NewDesc("privateline_files_stored", "Live encrypted files.", nil, nil)
)

func (storageCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDisk, descMemtable, descWAL, descCompactions, descFlushes, descReadAmp, descCache, descFileBytes, descFiles} {
		ch <- d
	}
}

func (c storageCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.db.Stats()
	ch <- prometheus.MustNewConstMetric(descDisk, prometheus.GaugeValue, float64(st.DiskBytes))
	ch <- prometheus.MustNewConstMetric(descMemtable, prometheus.GaugeValue, float64(st.MemtableBytes))
	ch <- prometheus.MustNewConstMetric(descWAL, prometheus.GaugeValue, float64(st.WALBytes))
	ch <- prometheus.MustNewConstMetric(descCompactions, prometheus.CounterValue, float64(st.Compactions))
	ch <- prometheus.MustNewConstMetric(descFlushes, prometheus.CounterValue, float64(st.Flushes))
	ch <- prometheus.MustNewConstMetric(descReadAmp, prometheus.GaugeValue, float64(st.ReadAmp))
	ch <- prometheus.MustNewConstMetric(descCache, prometheus.GaugeValue, float64(st.BlockCacheBytes))
	fb, fn := c.db.FileStats()
	ch <- prometheus.MustNewConstMetric(descFileBytes, prometheus.GaugeValue, float64(fb))
	ch <- prometheus.MustNewConstMetric(descFiles, prometheus.GaugeValue, float64(fn))
}
