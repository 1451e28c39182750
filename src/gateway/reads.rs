//! The session loop's read side, polled only when it may have something.
//!
//! A session task wakes for many reasons (a frame queued on its outbox, a
//! send persisted, a tick), and its `select!` polls every branch each time.
//! Polling the socket's read side when nothing woke it costs a readiness
//! check and two waker registrations in the WebSocket stream, once per
//! delivered frame under fan-out. So the read side is polled with a waker of
//! its own that records that it fired; a wake-up for anything else skips it.
//!
//! It is polled again whenever it may hold more than its waker says: at the
//! start, after it yielded a message (the stream may have buffered the next
//! one from the same socket read), and after its waker fired.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use futures::{Stream, StreamExt as _};

/// The read side's waker: notes that it fired, then wakes the session's task.
struct Flag {
    /// The read side may have something (its waker fired, or it was never polled).
    due: AtomicBool,
    /// The session's task, taken at the first poll (a task's waker does not change).
    task: OnceLock<Waker>,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.due.store(true, Ordering::Release);
        if let Some(task) = self.task.get() {
            task.wake_by_ref();
        }
    }
}

/// The read side of one session's socket.
pub(super) struct Reads {
    flag: Arc<Flag>,
    waker: Waker,
}

impl Reads {
    pub(super) fn new() -> Self {
        let flag = Arc::new(Flag { due: AtomicBool::new(true), task: OnceLock::new() });
        let waker = Waker::from(Arc::clone(&flag));
        Self { flag, waker }
    }

    /// The next message of `stream`; pending, without polling it, unless its
    /// waker fired since it last said pending. Always polled from the same task.
    pub(super) fn poll_next<S>(&self, stream: &mut S, cx: &mut Context<'_>) -> Poll<Option<S::Item>>
    where
        S: Stream + Unpin,
    {
        let task = self.flag.task.get_or_init(|| cx.waker().clone());
        if !task.will_wake(cx.waker()) {
            // Polled from elsewhere (never, in the session loop): no shortcut.
            return stream.poll_next_unpin(cx);
        }
        if !self.flag.due.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        match stream.poll_next_unpin(&mut Context::from_waker(&self.waker)) {
            Poll::Ready(item) => {
                // The stream may hold the next message already, with no wake-up to come.
                self.flag.due.store(true, Ordering::Release);
                Poll::Ready(item)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A stream that counts its polls and yields what is pushed, waking its last waker.
    #[derive(Default)]
    struct Source {
        items: std::collections::VecDeque<u32>,
        polls: usize,
        waker: Option<Waker>,
    }

    impl Stream for Source {
        type Item = u32;

        fn poll_next(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
            self.polls += 1;
            match self.items.pop_front() {
                Some(item) => Poll::Ready(Some(item)),
                None => {
                    self.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_stream_is_polled_only_when_its_waker_fired_or_it_may_hold_more() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&task);
        let reads = Reads::new();
        let mut source = Source::default();
        source.items.extend([1, 2]);

        // Both buffered items come out, one poll each, then the stream says pending.
        assert_eq!(reads.poll_next(&mut source, &mut cx), Poll::Ready(Some(1)));
        assert_eq!(reads.poll_next(&mut source, &mut cx), Poll::Ready(Some(2)));
        assert_eq!(reads.poll_next(&mut source, &mut cx), Poll::Pending);
        assert_eq!(source.polls, 3);

        // Woken for something else: the stream is not polled.
        for _ in 0..5 {
            assert_eq!(reads.poll_next(&mut source, &mut cx), Poll::Pending);
        }
        assert_eq!(source.polls, 3);

        // Its own waker fires: the task is woken and the stream polled again.
        source.items.push_back(3);
        source.waker.take().unwrap().wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the session's task was woken");
        assert_eq!(reads.poll_next(&mut source, &mut cx), Poll::Ready(Some(3)));
        assert_eq!(source.polls, 4);
    }

    #[test]
    fn a_poll_from_another_task_goes_to_the_stream() {
        let task = |n| Waker::from(Arc::new(Count(AtomicUsize::new(n))));
        let (first, other) = (task(0), task(1));
        let reads = Reads::new();
        let mut source = Source::default();
        assert_eq!(reads.poll_next(&mut source, &mut Context::from_waker(&first)), Poll::Pending);
        assert_eq!(reads.poll_next(&mut source, &mut Context::from_waker(&other)), Poll::Pending);
        assert_eq!(source.polls, 2);
    }
}
