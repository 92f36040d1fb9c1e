//! Delivering one edition: the pre-send check of a resumed edition, the delivery passes,
//! in-run retries of deferred rows, pauses while the relay is down, and (on a shared
//! PostgreSQL store) waiting for rows other instances hold.

use super::*;

impl Run<'_> {
    /// Delivers what an edition still owes, waiting in-run for deferred messages that
    /// come due within `retry_within_run`; later ones are left for the next send.
    /// `checked`: every owed copy has just been rendered by the pre-flight (a new
    /// edition); a resumed one is checked here against today's templates.
    pub(super) async fn deliver_edition(
        &self,
        store: &mut Store,
        ed: &store::EditionRow,
        maker: CopyMaker,
        mut checked: bool,
    ) -> Result<Tally, PipelineError> {
        let maker = Arc::new(maker);
        let digest = &maker.digest;
        let delivery = &self.config.delivery;
        let mut pacing = Pacing {
            concurrency: delivery.concurrency,
            rate: delivery.rate,
            max_attempts: delivery.max_attempts,
            retry_base: delivery.retry_base,
            give_up_at: ed.created_at
                + chrono::Duration::from_std(delivery.retry_for).unwrap_or(chrono::Duration::MAX),
            pause: delivery.retry_base,
            relay_proven: store.count_deliveries(ed.id, "sent")? > 0,
        };
        let started = time::now();
        let mut tally = Tally::default();
        // Times the transport failed for everyone in this run: each pause is longer.
        let mut pauses = 0u32;
        let mut waited_for = 0usize;
        loop {
            let owed = deliver::Owed::new(store, ed.id, time::now())?;
            if owed.total() > 0 {
                if !checked {
                    // The owed rows of a resumed edition are checked against today's
                    // templates before the first of them is sent, a page at a time.
                    let mut pages = owed.peek();
                    let began = std::time::Instant::now();
                    loop {
                        let page = pages.next_page(store)?;
                        if page.is_empty() {
                            break;
                        }
                        let copies: Vec<Copy> = page
                            .iter()
                            .map(|r| (&r.subscriber, r.threads.as_deref()))
                            .collect();
                        maker.check_all(&copies)?;
                    }
                    tracing::info!(digest = %digest.name, edition = ed.number, copies = owed.total(),
                        ms = began.elapsed().as_millis() as u64,
                        "Checked the owed copies against today's templates before sending any.");
                    // Retries later in this run are of copies rendered in this run.
                    checked = true;
                }
                let progress = self.opts.progress.as_ref();
                progress.start(&digest.name, ed.number, owed.total());
                let m = Arc::clone(&maker);
                let result = deliver::deliver(
                    store,
                    self.transport,
                    owed,
                    Arc::new(move |row: &store::PendingDelivery| {
                        m.make(&row.subscriber, row.threads.as_deref())
                    }),
                    &|e: &PipelineError| match e {
                        PipelineError::Build(b) => Some(b.to_string()),
                        _ => None,
                    },
                    &pacing,
                    &self.opts.stop,
                    &|done| progress.advance(done),
                )
                .await;
                progress.finish();
                let this = result?;
                let paused = this.paused.clone();
                tally.add(this);
                if tally.stopped {
                    return Ok(tally);
                }
                if let Some(why) = paused {
                    pauses += 1;
                    tracing::warn!(digest = %digest.name, edition = ed.number, reason = %why,
                        retry_in_s = pacing.pause.as_secs(), "Delivery paused: the transport fails for every message; nothing was failed, the rows wait.");
                    // A probe interval that grows, as an MTA's queue runs do, up to ten
                    // minutes.
                    pacing.pause = (delivery.retry_base * 2u32.saturating_pow(pauses.min(10)))
                        .min(std::time::Duration::from_secs(600));
                    // A local outbox that cannot be written will not heal within a run.
                    if matches!(self.transport, Transport::Outbox(_) | Transport::Preview(_)) {
                        break;
                    }
                } else {
                    tally.paused = None;
                    pauses = 0;
                    pacing.pause = delivery.retry_base;
                }
                pacing.relay_proven |= tally.sent > 0;
            }
            if !self.opts.wait_for_retries {
                break;
            }
            // Several instances on one PostgreSQL: rows another instance holds are
            // waited for, so that if it dies they are taken over here and the edition
            // is finished by this `send`, not left owed.
            // After a paused pass the rows nobody holds are the ones this run could not
            // send (they wait for the next); otherwise any owed row not ours means
            // another pass: someone holds it, was reserving it, or died holding it.
            let held = store.held_elsewhere(ed.id, tally.paused.is_some())?;
            if held > 0 {
                if self.opts.stop.is_set() {
                    break;
                }
                if held != waited_for {
                    tracing::info!(digest = %digest.name, edition = ed.number, rows = held,
                        "Waiting for rows another instance holds; any it leaves are sent here.");
                    waited_for = held;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            let Some(next) = store.next_deferred_at(ed.id)? else {
                break;
            };
            let now = time::now();
            let limit =
                started + chrono::Duration::from_std(delivery.retry_within_run).unwrap_or_default();
            if next > limit {
                break;
            }
            let wait = (next - now).to_std().unwrap_or_default();
            tracing::info!(digest = %digest.name, edition = ed.number, wait_ms = wait.as_millis() as u64, "Waiting for deferred messages to come due.");
            tokio::time::sleep(wait).await;
        }
        // A message deferred and then sent within this run counts once, as sent: what
        // is deferred is what the ledger still holds as deferred.
        tally.deferred = store.count_deliveries(ed.id, "deferred")?;
        store.finish_edition_if_done(ed.id, time::now())?;
        Ok(tally)
    }
}
