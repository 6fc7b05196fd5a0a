//! The lane's tests without Python: its header rules ([`rules`]), and its state machine on real
//! loopback sockets ([`harness`]): requests and what the host is told ([`requests`]), the end of a
//! stream in every state ([`eof`]), backpressure, pools and timeouts ([`flow`]), write timeouts,
//! the shared concurrency cap, deadlines, drain and the tables' bounds ([`limits`]).

mod eof;
mod flow;
mod harness;
mod limits;
mod requests;
mod rules;
