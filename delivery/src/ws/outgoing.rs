//! A connection's bounded queue of frames in front of its socket.
//!
//! The connection task both reads (requests, events, timers) and writes, so
//! writing must be a future it can drop at any await point (a `select!`
//! branch that loses) without losing or repeating a frame: a frame leaves
//! the queue only in the same poll in which the socket takes it. (A plain
//! `sink.feed(frame)` owns the frame while it waits for room, so dropping
//! it would drop the frame.)

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{ready, Context, Poll};

use axum::extract::ws::{Message, WebSocket};
use futures::stream::SplitSink;
use futures::SinkExt;

pub struct Outgoing {
    sink: SplitSink<WebSocket, Message>,
    queue: VecDeque<Message>,
    cap: usize,
    /// Frames handed to the socket since its last flush.
    unflushed: bool,
}

impl Outgoing {
    pub fn new(sink: SplitSink<WebSocket, Message>, cap: usize) -> Self {
        Outgoing {
            sink,
            queue: VecDeque::new(),
            cap: cap.max(1),
            unflushed: false,
        }
    }

    /// Frames are waiting, or were written but not flushed.
    pub fn busy(&self) -> bool {
        !self.queue.is_empty() || self.unflushed
    }

    /// No room for another frame.
    pub fn full(&self) -> bool {
        self.queue.len() >= self.cap
    }

    /// Queue `msg` (the caller makes room first: see [`Outgoing::full`]).
    pub fn push(&mut self, msg: Message) {
        self.queue.push_back(msg);
    }

    /// Write every queued frame and flush them (one socket write for the
    /// lot when they fit in its buffer). Cancel-safe.
    pub async fn write(&mut self) -> Result<(), axum::Error> {
        poll_fn(|cx| self.poll_write(cx)).await
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        while !self.queue.is_empty() {
            ready!(self.sink.poll_ready_unpin(cx))?;
            let msg = self.queue.pop_front().expect("queue is not empty");
            self.sink.start_send_unpin(msg)?;
            self.unflushed = true;
        }
        ready!(self.sink.poll_flush_unpin(cx))?;
        self.unflushed = false;
        Poll::Ready(Ok(()))
    }

    /// Drop what is queued (the connection is closing) and send `msg`,
    /// after the frames the socket already took.
    pub async fn close_with(&mut self, msg: Message) -> Result<(), axum::Error> {
        self.queue.clear();
        self.sink.send(msg).await
    }
}
