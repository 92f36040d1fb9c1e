//! Gazette: e-mail digests of a publication's new essays and reader replies.
//!
//! The pipeline runs one way, one module per stage (see ARCHITECTURE.md):
//! [`config`] → [`source`] → [`store`] → [`edition`] → [`render`] → [`deliver`] → [`store`].
//! [`pipeline`] drives the stages for one `send` or `gather`; [`cli`] is the command line.

pub mod cli;
pub mod config;
pub mod deliver;
pub mod edition;
pub mod pipeline;
pub mod render;
pub mod source;
pub mod store;
pub mod time;
