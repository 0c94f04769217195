#![allow(clippy::unwrap_used)]
//! Clients spread over several reactors: CLIENT LIST sees all of them, CLIENT KILL closes
//! one owned by another reactor, names and ids are per connection, RESET restores defaults.

mod common;

use common::Server;

#[test]
fn client_list_and_kill_across_reactors() {
    let server = Server::start(&["--threads", "3"]);
    let mut conns: Vec<_> = (0..6).map(|_| server.connect()).collect();
    let mut ids = Vec::new();
    for (i, c) in conns.iter_mut().enumerate() {
        c.call(&["CLIENT", "SETNAME", &format!("c{i}")], "+OK\r\n");
        c.send(&["CLIENT", "ID"]);
        let line = c.line();
        ids.push(line[1..line.len() - 2].parse::<u64>().unwrap());
    }
    conns[0].send(&["CLIENT", "LIST"]);
    let header = conns[0].line();
    let len: usize = header[1..header.len() - 2].parse().unwrap();
    let mut body = vec![0u8; len + 2];
    std::io::Read::read_exact(&mut conns[0].0, &mut body).unwrap();
    let body = String::from_utf8(body).unwrap();
    for i in 0..6 {
        assert!(body.contains(&format!("name=c{i} ")), "{body}");
    }
    assert!(
        body.contains("name=c0 ") && body.contains("cmd=client|list "),
        "{body}"
    );
    assert!(body.contains("cmd=client|id "), "{body}");
    // Kill every other connection from connection 0, whichever reactor owns them.
    for &id in &ids[1..] {
        conns[0].call(&["CLIENT", "KILL", "ID", &id.to_string()], ":1\r\n");
    }
    for c in &mut conns[1..] {
        assert!(c.closed());
    }
    conns[0].call(&["CLIENT", "KILL", "ID", "999999"], ":0\r\n");
    conns[0].call(&["CLIENT", "KILL", "1.2.3.4:5"], "-ERR No such client\r\n");
    conns[0].call(&["CLIENT", "GETNAME"], "$2\r\nc0\r\n");
    conns[0].call(
        &["CLIENT", "SETNAME", "a b"],
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
    );
    conns[0].call(&["CLIENT", "SETINFO", "LIB-NAME", "mylib"], "+OK\r\n");
    conns[0].call(
        &["CLIENT", "SETINFO", "BAD", "x"],
        "-ERR Unrecognized option 'BAD'\r\n",
    );
    conns[0].call(&["SELECT", "2"], "+OK\r\n");
    conns[0].call(&["RESET"], "+RESET\r\n");
    conns[0].call(&["CLIENT", "GETNAME"], "$-1\r\n");
    conns[0].call(
        &["CLIENT", "NOPE"],
        "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n",
    );
}
