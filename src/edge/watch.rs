//! Per-connection deadlines, enforced where the bytes are read.
//!
//! hyper's own `header_read_timeout` starts whenever it waits for a request
//! head, so on a keep-alive connection it also ends the wait *between*
//! requests: it cannot tell a slow head from an idle connection. This wrapper
//! around the socket does:
//! - a new connection must send its first request head within
//!   `header_timeout` of the accept (one that sends nothing is closed then);
//! - after an answer the connection is idle, and closed `idle_timeout` after
//!   it unless a new head starts;
//! - from the first byte of a later head until the request reaches the
//!   service, the head must arrive within `header_timeout` (slowloris);
//! - while a request is in the service, the request timeout governs.
//!
//! Closing means failing the read with `TimedOut`: hyper then drops the
//! connection.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// What the service tells the socket: how many requests are in it, and how
/// many it has answered.
#[derive(Default)]
pub struct Activity {
    in_service: AtomicU32,
    answered: AtomicU64,
    /// The connection's task, woken after an answer: hyper does not read
    /// again by itself once it is idle, so without this the idle deadline
    /// would not be armed until the client sent something.
    reader: Mutex<Option<Waker>>,
}

impl Activity {
    fn park(&self, waker: &Waker) {
        if let Ok(mut reader) = self.reader.lock()
            && !reader.as_ref().is_some_and(|w| w.will_wake(waker))
        {
            *reader = Some(waker.clone());
        }
    }
}

impl Activity {
    /// Marks a request as in the service until the guard is dropped
    /// (answered, timed out or cancelled).
    pub fn enter(self: &Arc<Self>) -> InService {
        self.in_service.fetch_add(1, Ordering::AcqRel);
        InService(self.clone())
    }
}

pub struct InService(Arc<Activity>);

impl Drop for InService {
    fn drop(&mut self) {
        self.0.answered.fetch_add(1, Ordering::AcqRel);
        self.0.in_service.fetch_sub(1, Ordering::AcqRel);
        let reader = self.0.reader.lock().ok().and_then(|mut r| r.take());
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Waiting for the first byte of a request head.
    Idle,
    /// Part of a head has arrived.
    Head,
}

#[derive(Clone, Copy)]
pub struct Deadlines {
    pub header: Duration,
    pub idle: Duration,
}

/// A socket with the deadlines above.
pub struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    deadlines: Deadlines,
    phase: Phase,
    /// `answered` when the phase was last set.
    seen_answered: u64,
    /// When the phase's time is up.
    deadline: Instant,
    /// Fires at or before `deadline`. It is moved only when the deadline
    /// comes earlier; a later deadline is re-armed when the timer fires. So
    /// a busy connection touches the timer wheel about once per header
    /// timeout, not twice per request.
    timer: Pin<Box<Sleep>>,
}

impl Watched {
    /// `first_head_by`: when the first request head must be complete
    /// (`header` after the accept).
    pub fn new(
        inner: TcpStream,
        activity: Arc<Activity>,
        deadlines: Deadlines,
        first_head_by: Instant,
    ) -> Self {
        Self {
            inner,
            activity,
            deadlines,
            // A new connection is waiting for its first head, counted from
            // the accept: one that sends nothing is closed after `header`.
            phase: Phase::Head,
            seen_answered: 0,
            deadline: first_head_by,
            timer: Box::pin(tokio::time::sleep_until(first_head_by)),
        }
    }

    fn in_service(&self) -> bool {
        self.activity.in_service.load(Ordering::Acquire) > 0
    }

    /// After an answer, the connection is idle again.
    fn note_answers(&mut self) {
        let answered = self.activity.answered.load(Ordering::Acquire);
        if answered != self.seen_answered && !self.in_service() {
            self.seen_answered = answered;
            self.phase = Phase::Idle;
            self.set_deadline(Instant::now() + self.deadlines.idle);
        }
    }

    fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
        if deadline < self.timer.deadline() {
            self.timer.as_mut().reset(deadline);
        }
    }

    /// True once the deadline has passed; else the timer is armed to wake
    /// this task by then.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= self.deadline {
                return true;
            }
            // Fired for an earlier deadline since moved later.
            let deadline = self.deadline;
            self.timer.as_mut().reset(deadline);
        }
        false
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.note_answers();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && this.phase == Phase::Idle && !this.in_service() {
                    this.phase = Phase::Head;
                    this.set_deadline(Instant::now() + this.deadlines.header);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                // Parked before `in_service` is read: an answer that comes
                // after the read wakes this task.
                this.activity.park(cx.waker());
                if !this.in_service() && this.expired(cx) {
                    let why = match this.phase {
                        Phase::Idle => "idle connection closed",
                        Phase::Head => "request head not received in time",
                    };
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)));
                }
                Poll::Pending
            }
            ready => ready,
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
