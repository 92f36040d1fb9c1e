//! Gazette: e-mail digests of a publication's new essays and reader replies.
//!
//! The pipeline runs one way, one module per stage (see ARCHITECTURE.md):
//! [`config`] → [`source`] → [`store`] → [`edition`] → [`render`] → [`deliver`] → [`store`].
//! [`pipeline`] drives the stages for one `send` or `gather`; [`daemon`] runs them on
//! [`schedule`]s as a service; [`web`] is the subscribe / unsubscribe endpoint;
//! [`inbound`] reads the bounces, complaints and mailto unsubscribes that come back;
//! [`cli`] is the command line.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod deliver;
pub mod edition;
pub mod inbound;
pub mod pipeline;
pub mod render;
pub mod schedule;
pub mod source;
pub mod status;
pub mod store;
pub mod subscribers;
pub mod time;
pub mod token;
pub mod web;

/// An error with its whole chain of causes, `outer: inner: root`, each said once. Tera,
/// reqwest and lettre keep the real cause deep in the chain.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !out.contains(&m) {
            out.push_str(": ");
            out.push_str(&m);
        }
        cur = s.source();
    }
    out
}
