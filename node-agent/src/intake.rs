//! Assignment intake: the node's durable pull consumer on
//! `reef.assign.<node>`. A `run` command is acknowledged only after its
//! record is on disk; a redelivered one is acknowledged and ignored; a
//! malformed one, or one meant for another node, is terminated (never
//! redelivered) and counted.

use crate::{Agent, AgentError};
use async_nats::jetstream::{consumer, message::AckKind, Message};
use futures::StreamExt;
use reef_proto::agent::AgentCommand;
use reef_proto::subjects;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long to wait between attempts to open the consumer.
const RETRY: Duration = Duration::from_millis(500);

impl Agent {
    pub(crate) async fn intake_loop(self: Arc<Self>) -> Result<(), AgentError> {
        let Some(mut messages) = self.open_consumer().await else {
            return Ok(());
        };
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                msg = messages.next() => match msg {
                    Some(Ok(msg)) => self.handle_command(msg).await,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "assignment consumer error");
                        // Deleted under us: the coordinators make it again
                        // when the node registers; open_consumer asks.
                        if self.consumer_gone().await {
                            tracing::warn!("this node's assignment consumer is gone; asking for it again");
                            match self.open_consumer().await {
                                Some(m) => messages = m,
                                None => return Ok(()),
                            }
                        }
                    }
                    None => {
                        tracing::warn!("assignment consumer ended; re-opening it");
                        match self.open_consumer().await {
                            Some(m) => messages = m,
                            None => return Ok(()),
                        }
                    }
                },
            }
        }
    }

    /// Whether this node's assignment consumer (or its stream) no longer exists.
    async fn consumer_gone(&self) -> bool {
        let Ok(stream) = self.js.get_stream(subjects::ASSIGN_STREAM).await else {
            return true;
        };
        stream
            .consumer_info(subjects::assign_consumer(self.node))
            .await
            .is_err()
    }

    /// Opens the consumer, waiting for a coordinator to create it; while
    /// it is missing, registers again every few seconds, which makes the
    /// coordinators create it (after a deletion, say). None if shutdown
    /// came first.
    async fn open_consumer(&self) -> Option<consumer::pull::Stream> {
        /// Attempts (one every `RETRY`) before a missing consumer is worth a warning.
        const WARN_AFTER: u64 = 20;
        let mut warned = false;
        for attempt in 1u64.. {
            match self.try_open_consumer().await {
                Ok(messages) => return Some(messages),
                Err(e) => {
                    if attempt % 10 == 0 {
                        self.register().await;
                    }
                    // At start the coordinator may come up a moment after
                    // the agent: only a wait that lasts is worth a warning.
                    if !warned && attempt >= WARN_AFTER {
                        tracing::warn!(error = %e, "waiting for this node's assignment consumer (is a coordinator running, and has it registered this node?)");
                        warned = true;
                    } else if !warned {
                        tracing::debug!(error = %e, "waiting for this node's assignment consumer");
                    }
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                _ = tokio::time::sleep(RETRY) => {}
            }
        }
        None
    }

    async fn try_open_consumer(&self) -> Result<consumer::pull::Stream, async_nats::Error> {
        // The coordinator creates the consumer when the node registers; a
        // node may bind only its own and can create none.
        let stream = self.js.get_stream(subjects::ASSIGN_STREAM).await?;
        let consumer: consumer::PullConsumer = stream
            .get_consumer(&subjects::assign_consumer(self.node))
            .await?;
        Ok(consumer.messages().await?)
    }

    /// The command in `payload`, if its seal is good: signed with the
    /// cluster's assignment key, for this node, unexpired, not seen before.
    fn open_command(&self, payload: &[u8]) -> Result<AgentCommand, String> {
        let sealed = reef_proto::envelope::decode_sealed::<AgentCommand>(payload)
            .map_err(|e| e.to_string())?;
        let key = self.config.assignment_key.as_deref().unwrap_or_default();
        let mut window = self.replay.lock().unwrap_or_else(|e| e.into_inner());
        reef_proto::seal::check(
            reef_proto::MessageKind::AgentCommand,
            &sealed.payload,
            sealed.seal.as_ref(),
            self.node,
            reef_proto::now_ms(),
            &mut window,
            |bytes, signature| reef_trust::verify_assignment(key, bytes, signature),
        )
        .map_err(|refusal| {
            *self
                .refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(refusal.reason())
                .or_default() += 1;
            format!("refused a command: {refusal}")
        })?;
        Ok(sealed.message)
    }

    async fn handle_command(self: &Arc<Self>, msg: Message) {
        let ack = match self.open_command(&msg.payload) {
            Err(e) => {
                tracing::warn!(error = %e, "dropping a command");
                self.malformed.fetch_add(1, Ordering::Relaxed);
                AckKind::Term
            }
            Ok(AgentCommand::Run(assignment)) if assignment.node != self.node => {
                tracing::warn!(alloc = %assignment.alloc, "dropping an assignment for another node");
                self.malformed.fetch_add(1, Ordering::Relaxed);
                AckKind::Term
            }
            Ok(AgentCommand::Run(assignment)) => {
                let alloc = assignment.alloc;
                match self.records.accept_assignment(*assignment).await {
                    Ok(true) => {
                        tracing::debug!(%alloc, "assignment accepted");
                        // Acknowledge first so the job starts with the assignment settled.
                        let acked = msg.ack().await;
                        if let Err(e) = acked {
                            tracing::warn!(%alloc, error = %e, "could not acknowledge assignment; it will be redelivered and ignored");
                        }
                        // The executor reports right away (`starting`), which
                        // supersedes `accepted`; reporting here too would cost
                        // a round trip per assignment on the intake path.
                        self.start(alloc);
                        return;
                    }
                    Ok(false) => {
                        tracing::debug!(%alloc, "redelivered assignment ignored");
                        AckKind::Ack
                    }
                    Err(e) => {
                        tracing::error!(%alloc, error = %e, "could not record assignment; asking for redelivery");
                        AckKind::Nak(Some(Duration::from_secs(1)))
                    }
                }
            }
            Ok(AgentCommand::Deploy(assignment)) if assignment.node != self.node => {
                tracing::warn!(instance = %assignment.instance, "dropping a deploy for another node");
                self.malformed.fetch_add(1, Ordering::Relaxed);
                AckKind::Term
            }
            Ok(AgentCommand::Deploy(assignment)) => {
                let instance = assignment.instance;
                match self.accept_instance(*assignment).await {
                    Ok(true) => tracing::info!(%instance, "deploy accepted"),
                    Ok(false) => tracing::debug!(%instance, "redelivered deploy ignored"),
                    Err(e) => {
                        tracing::error!(%instance, error = %e, "could not record deploy; asking for redelivery");
                        return self
                            .settle(msg, AckKind::Nak(Some(Duration::from_secs(1))))
                            .await;
                    }
                }
                AckKind::Ack
            }
            Ok(AgentCommand::StopInstance {
                instance,
                forget_app,
            }) => {
                if forget_app {
                    if let Some(record) = self.instances.get(instance) {
                        self.services.forget_app(&record.assignment.release.app);
                    }
                }
                tracing::info!(%instance, forget_app, "instance stop requested");
                if !self.stop_instance(instance) {
                    tracing::debug!(%instance, "stop for an instance that is not running here");
                }
                AckKind::Ack
            }
            Ok(AgentCommand::PostDeploy { instance }) => {
                if !self.post_deploy(instance).await {
                    tracing::warn!(%instance, "post_deploy for an instance that is not running here");
                }
                AckKind::Ack
            }
            Ok(AgentCommand::Stop { alloc, .. }) => {
                match self.lock_running().get(&alloc) {
                    Some(token) => {
                        tracing::info!(%alloc, "stop requested");
                        token.cancel();
                    }
                    None => tracing::debug!(%alloc, "stop for an allocation that is not running"),
                }
                AckKind::Ack
            }
        };
        self.settle(msg, ack).await;
    }

    async fn settle(&self, msg: Message, ack: AckKind) {
        if let Err(e) = msg.ack_with(ack).await {
            tracing::warn!(error = %e, "could not acknowledge command");
        }
    }
}
