//! The lane's tests without Python: its header rules ([`rules`]), and its state machine on real
//! loopback sockets ([`harness`]): requests and what the host is told ([`requests`]), the end of a
//! stream in every state ([`eof`]), backpressure, pools and timeouts ([`flow`]).

mod eof;
mod flow;
mod harness;
mod requests;
mod rules;
