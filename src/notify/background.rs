//! Where deliveries run: a runtime of their own on one thread, at a lower OS
//! priority (`webhooks.delivery_nice`), so that posting webhooks, pushes and
//! digests takes the CPU live traffic leaves and never competes with it.
//!
//! What the domain hands over is queued on the main runtime, at full priority
//! (a notice is never dropped because deliveries are behind); only the lease
//! loop, its workers and the queue gauges run here. A node whose CPU live
//! traffic takes whole lets its queue grow (durably) and catches up when the
//! traffic eases; `weft_webhook_queue_due_lanes` shows it.

use std::time::Duration;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long the runtime waits, once the node stops, for its tasks to end.
const GRACE: Duration = Duration::from_secs(30);

/// Starts the delivery thread; returns the handle its tasks are spawned on.
/// It ends once `shutdown` fired and `tracker` (closed by the node's shutdown)
/// has no task left, or [`GRACE`] later.
pub(super) fn start(
    nice: i32,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> std::io::Result<Handle> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let tracker = tracker.clone();
    std::thread::Builder::new().name("weft-deliver".into()).spawn(move || {
        lower_priority(nice);
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let _ = tx.send(Ok(runtime.handle().clone()));
        runtime.block_on(async {
            shutdown.cancelled().await;
            let _ = tokio::time::timeout(GRACE, tracker.wait()).await;
        });
    })?;
    rx.recv().map_err(|_| std::io::Error::other("the delivery thread ended before it started"))?
}

/// Sets this thread's nice value to `nice` (Linux: a thread's own; the threads
/// it starts inherit it). Lowering a priority needs no privilege.
fn lower_priority(nice: i32) {
    if nice <= 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // On Linux a nice value is a thread's own: PRIO_PROCESS with a thread id sets that thread's.
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), nice.min(19)) {
            tracing::warn!(error = %e, "cannot lower the delivery thread's priority; it runs at the node's");
        }
    }
}
