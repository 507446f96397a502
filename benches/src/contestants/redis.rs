//! Redis on loopback: a Lua script that checks the limit and `INCRBY`s, one round trip per call.
//!
//! Runs only when [`REDIS_ENV`] names a server on a loopback address (`scripts/bench.sh` starts
//! one when `redis-server` is installed). The client is a minimal RESP encoder/decoder: the
//! benchmark needs two commands, not a client library.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};

use super::{Contestant, ROW_LIMIT};
use crate::fixture::{project_name, BenchResult};
use crate::harness::{Calls, Sharing, Worker};

/// The environment variable holding the server's `host:port`.
pub const REDIS_ENV: &str = "TOLLGATE_BENCH_REDIS";

const CHECK_AND_ADD: &str = "local used = tonumber(redis.call('GET', KEYS[1]) or '0') \
     if used + tonumber(ARGV[1]) <= tonumber(ARGV[2]) then \
       return redis.call('INCRBY', KEYS[1], ARGV[1]) end \
     return -1";

/// `EVALSHA` of the check-and-add script, one connection per thread.
pub struct Redis {
    addr: SocketAddr,
    sha: String,
}

impl Redis {
    /// Connects to the server named by [`REDIS_ENV`]: `Ok(None)` when the variable is unset
    /// or empty, an error when it names a non-loopback address or the server does not answer.
    pub fn from_env() -> BenchResult<Option<Redis>> {
        let spec = match std::env::var(REDIS_ENV) {
            Ok(spec) if !spec.is_empty() => spec,
            _ => return Ok(None),
        };
        let addr = spec
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| format!("{REDIS_ENV}={spec} resolves to no address"))?;
        if !addr.ip().is_loopback() {
            return Err(format!("{REDIS_ENV}={spec} is not a loopback address").into());
        }
        let mut conn = Conn::open(addr)?;
        let sha = match conn.command(&[b"SCRIPT", b"LOAD", CHECK_AND_ADD.as_bytes()])? {
            Reply::Bulk(sha) => String::from_utf8(sha)?,
            other => return Err(format!("SCRIPT LOAD answered {other:?}").into()),
        };
        Ok(Some(Redis { addr, sha }))
    }
}

impl Contestant for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn op(&self) -> &'static str {
        "Redis EVALSHA check+INCRBY (loopback)"
    }

    fn batch(&self) -> u64 {
        50
    }

    fn slow(&self) -> bool {
        true
    }

    fn workers(&self, threads: usize, sharing: Sharing) -> BenchResult<Vec<Box<dyn Worker>>> {
        let mut setup = Conn::open(self.addr)?;
        for i in 0..threads {
            setup.command(&[b"SET", redis_key(i).as_bytes(), b"0"])?;
        }
        let limit = ROW_LIMIT.to_string();
        (0..threads)
            .map(|t| {
                let mut conn = Conn::open(self.addr)?;
                let (sha, key, limit) =
                    (self.sha.clone(), redis_key(sharing.slot(t)), limit.clone());
                Ok(Box::new(Calls(move || {
                    let args: [&[u8]; 6] = [
                        b"EVALSHA",
                        sha.as_bytes(),
                        b"1",
                        key.as_bytes(),
                        b"1",
                        limit.as_bytes(),
                    ];
                    match conn.command(&args).expect("redis answers") {
                        Reply::Int(n) => assert!(n > 0, "check-and-add refused"),
                        other => panic!("EVALSHA answered {other:?}"),
                    }
                })) as Box<dyn Worker>)
            })
            .collect()
    }
}

fn redis_key(project: usize) -> String {
    format!("tollgate-bench:{}", project_name(project))
}

/// A RESP reply, as far as this benchmark needs.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Error(String),
}

/// One blocking connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    out: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            out: Vec::with_capacity(256),
        })
    }

    fn command(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        encode(&mut self.out, args);
        self.writer.write_all(&self.out)?;
        match decode(&mut self.reader)? {
            Reply::Error(e) => Err(io::Error::other(e)),
            reply => Ok(reply),
        }
    }
}

fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.clear();
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn decode(reader: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches("\r\n");
    let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("bad reply {line:?}"));
    let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
    Ok(match kind {
        "+" => Reply::Simple(rest.to_owned()),
        "-" => Reply::Error(rest.to_owned()),
        ":" => Reply::Int(rest.parse().map_err(|_| bad())?),
        "$" => {
            let len: i64 = rest.parse().map_err(|_| bad())?;
            if len < 0 {
                return Ok(Reply::Nil);
            }
            let mut body = vec![0; len as usize + 2];
            reader.read_exact(&mut body)?;
            body.truncate(len as usize);
            Reply::Bulk(body)
        }
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_command() {
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", b"k", b"10"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n10\r\n");
    }

    #[test]
    fn decodes_replies() {
        let mut input: &[u8] = b"+OK\r\n:42\r\n$3\r\nabc\r\n$-1\r\n-ERR no\r\n";
        assert_eq!(decode(&mut input).unwrap(), Reply::Simple("OK".into()));
        assert_eq!(decode(&mut input).unwrap(), Reply::Int(42));
        assert_eq!(decode(&mut input).unwrap(), Reply::Bulk(b"abc".to_vec()));
        assert_eq!(decode(&mut input).unwrap(), Reply::Nil);
        assert_eq!(decode(&mut input).unwrap(), Reply::Error("ERR no".into()));
    }

    #[test]
    fn unset_variable_means_skip() {
        if std::env::var_os(REDIS_ENV).is_none() {
            assert!(Redis::from_env().unwrap().is_none());
        }
    }
}
