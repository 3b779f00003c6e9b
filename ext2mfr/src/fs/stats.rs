//! Every counter of the daemon as one JSON object (the `ext2mfr.stats`
//! attribute of the root, and the log at unmount).

use super::Ext2;
use std::sync::atomic::Ordering;

impl Ext2 {
    /// Every counter of the daemon as one JSON object: the recovery
    /// runtime's, the gate's, the block cache's and the fault injector's.
    pub fn stats_json(&self) -> String {
        let r = self.rt.stats();
        let c = self.cache.stats();
        let g = &self.gate;
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let inj = faultinject::global()
            .map(|i| i.counters())
            .unwrap_or_default();
        let logged = r.logged_reads + r.logged_writes;
        let all = logged + r.unlogged_reads + r.unlogged_writes;
        serde_json::json!({
            "transport": self.transport.get().copied().unwrap_or("none"),
            "writeback_cache": self.writeback_cache.load(Ordering::Relaxed),
            "queue_policy": self.queue_policy.get().copied().unwrap_or("none"),
            "queue_promotions": self.queue_promotions.load(Ordering::Relaxed),
            "fuse_requests": self.fuse_requests.json(),
            "recovery": {
                "enabled": self.rt.enabled(),
                "domains_started": r.started,
                "committed": r.committed,
                "rolled_back": r.rolled_back,
                "cascaded_rollbacks": r.cascaded,
                "merged_children": r.merged,
                "dependence_edges": r.edges,
                "logged_reads": r.logged_reads,
                "logged_writes": r.logged_writes,
                "unlogged_reads": r.unlogged_reads,
                "unlogged_writes": r.unlogged_writes,
                "coverage": if all == 0 { 0.0 } else { logged as f64 / all as f64 },
                "uncommitted_now": self.rt.uncommitted(),
            },
            "requests": {
                "total": l(&g.requests),
                "faulted": l(&g.faulted),
                "cascaded": l(&g.cascaded),
                "retries": l(&g.retries),
                "failed_after_fault": l(&g.failed),
            },
            "cache": {
                "hits": c.hits, "misses": c.misses, "evictions": c.evictions,
                "writebacks": c.writebacks, "written_blocks": c.written_blocks, "forgotten": c.forgotten,
            },
            "ama": self.ama_json(),
            "faults_injected": {
                "alloc_checks": inj.alloc_checks,
                "alloc_faults": inj.alloc_faults,
                "fault_point_hits": inj.fault_point_hits,
                "safety_faults": inj.safety_faults,
                "by_site": inj.by_site.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            },
        })
        .to_string()
    }

    fn ama_json(&self) -> serde_json::Value {
        let s = self.pool.space();
        let a = &self.config.ama;
        let by_op: serde_json::Map<String, serde_json::Value> = s
            .by_op
            .iter()
            .map(|(op, o)| {
                (
                    op.to_string(),
                    serde_json::json!({
                        "requests": o.requests, "reserved_pages": o.reserved_pages,
                        "used_pages": o.used_pages, "returned_pages": o.returned_pages,
                        "pinned_pages": o.pinned_pages, "max_reserved": o.max_reserved,
                        "max_used": o.max_used, "under_allocations": o.under_allocations,
                        "restarts": o.restarts,
                    }),
                )
            })
            .collect();
        let sum = |f: fn(&ama::OpSpace) -> u64| s.by_op.values().map(f).sum::<u64>();
        serde_json::json!({
            "enabled": a.enabled, "peek": a.peek, "recycle": a.recycle,
            "page_size": s.page_size, "pool_pages": s.capacity_pages,
            "in_use_pages": s.in_use_pages, "peak_pages": s.peak_pages,
            "allocated_pages": s.allocated_pages,
            "allocated_object_bytes": s.allocated_object_bytes,
            "allocated_bytes": s.allocated_bytes(),
            "reservations": s.reservations,
            "reservation_failures": s.reservation_failures,
            "reserved_pages": sum(|o| o.reserved_pages),
            "used_pages": sum(|o| o.used_pages),
            "returned_pages": sum(|o| o.returned_pages),
            "pinned_pages": sum(|o| o.pinned_pages),
            "under_allocations": s.under_allocations,
            "restarts": s.restarts,
            "by_op": by_op,
        })
    }
}
