//! A session's sends in flight. The session numbers its sends one at a time,
//! in the order they came (its request step); the numbered sends are then
//! persisted together (the batch writer commits them in few batches) and
//! published — fanned out and acked — one at a time, in that same order. So
//! a client may pipeline up to `gateway.max_inflight_sends` sends, each is
//! still acked only once persisted, and the messages of one session keep
//! their order: in their numbers, on the wire to every recipient, in the acks.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::StreamExt as _;
use futures::stream::FuturesOrdered;

use super::handlers::Answers;
use crate::chat::{ChatError, ChatService, Numbered, Persisted};
use crate::protocol::{RequestId, ServerFrame};

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where one send stands once persisting is done with it.
enum Outcome {
    /// Persisted (or failed to be), with its request id.
    Persisted(Option<RequestId>, Box<Result<Persisted, ChatError>>),
    /// Answered without being numbered.
    Answered(Answers),
}

/// The sends of one session between their number and their ack.
pub(super) struct Sends<'a> {
    chat: &'a ChatService,
    /// Being persisted; they finish in any order and come out in order.
    persisting: FuturesOrdered<Boxed<'a, Outcome>>,
    /// Persisted (or failed, or answered), waiting for the sends before them to be published.
    ready: VecDeque<Outcome>,
    /// The one being published.
    publishing: Option<Boxed<'a, Answers>>,
}

impl<'a> Sends<'a> {
    pub(super) fn new(chat: &'a ChatService) -> Self {
        Self { chat, persisting: FuturesOrdered::new(), ready: VecDeque::new(), publishing: None }
    }

    /// Sends between their number and their ack.
    pub(super) fn len(&self) -> usize {
        self.persisting.len() + self.ready.len() + usize::from(self.publishing.is_some())
    }

    /// Starts persisting a numbered send.
    pub(super) fn push(&mut self, id: Option<RequestId>, numbered: Box<Numbered>) {
        let chat = self.chat;
        self.persisting.push_back(Box::pin(async move {
            Outcome::Persisted(id, Box::new(chat.persist(*numbered).await))
        }));
    }

    /// Queues the answer of a send that was not numbered, behind those in flight.
    pub(super) fn push_answered(&mut self, answers: Answers) {
        self.persisting.push_back(Box::pin(std::future::ready(Outcome::Answered(answers))));
    }

    /// The next answer, in the order the sends came: an ack once the send is
    /// published, or the error that stopped it. Pending while there is none
    /// (forever when nothing is in flight); safe to drop and call again.
    pub(super) fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<Answers> {
        // Every persist makes progress, whatever is being published.
        while let Poll::Ready(Some(outcome)) = self.persisting.poll_next_unpin(cx) {
            self.ready.push_back(outcome);
        }
        loop {
            if let Some(publishing) = self.publishing.as_mut() {
                let answers = std::task::ready!(publishing.as_mut().poll(cx));
                self.publishing = None;
                return Poll::Ready(answers);
            }
            match self.ready.pop_front() {
                Some(Outcome::Persisted(id, outcome)) => match *outcome {
                    Ok(persisted) => {
                        let chat = self.chat;
                        self.publishing = Some(Box::pin(async move {
                            let sent = chat.publish(persisted).await;
                            Answers::one(ServerFrame::Ack { id, chat: sent.chat, seq: sent.seq })
                        }));
                    }
                    Err(e) => return Poll::Ready(Answers::failed(id, &e)),
                },
                Some(Outcome::Answered(answers)) => return Poll::Ready(answers),
                None => return Poll::Pending,
            }
        }
    }

    /// Persists and publishes what is still in flight, answering no one (the
    /// session is closing; a client that retries a send gets its ack then).
    pub(super) async fn finish(mut self) {
        while self.len() > 0 {
            let _ = std::future::poll_fn(|cx| self.poll_answer(cx)).await;
        }
    }
}
