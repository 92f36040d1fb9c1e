//! Integration tests, built into one binary to keep link time down on small machines.
#![allow(unreachable_pub, dead_code)]

mod common;
mod config_errors;
mod daemon;
mod endpoint;
mod follows;
mod hostile;
mod inbound;
mod outages;
mod pg_support;
mod postfix_support;
mod postgres;
mod render;
mod send;
mod smtp;
mod smtp_crash;
mod smtp_faults;
mod smtp_support;
mod subscribers;
mod web;
mod wild_feeds;
mod wordpress_live;
mod wp_support;
