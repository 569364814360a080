//! Go-style addresses, as serve2d passed them to `net.Listen` and `net.Dial`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};

/// Where to listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenAddress {
    /// `":port"`: every interface, IPv4 and IPv6 (one dual-stack socket).
    AllInterfaces(u16),
    /// One address.
    Addr(SocketAddr),
}

impl ListenAddress {
    /// The socket address to bind: `[::]:port` for every interface.
    pub fn socket_addr(&self) -> SocketAddr {
        match *self {
            ListenAddress::AllInterfaces(port) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
            ListenAddress::Addr(addr) => addr,
        }
    }
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddress::AllInterfaces(port) => write!(f, ":{port}"),
            ListenAddress::Addr(addr) => write!(f, "{addr}"),
        }
    }
}

/// Splits `host:port` / `[v6]:port` / `:port` into host and numeric port.
fn split_host_port(address: &str) -> Result<(&str, u16), String> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) =
            rest.split_once(']').ok_or_else(|| format!("`{address}`: missing `]` after the IPv6 address"))?;
        let port = after.strip_prefix(':').ok_or_else(|| format!("`{address}`: expected `:port` after `]`"))?;
        (host, port)
    } else {
        let (host, port) =
            address.rsplit_once(':').ok_or_else(|| format!("`{address}`: expected host:port, [ipv6]:port or :port"))?;
        if host.contains(':') {
            return Err(format!("`{address}`: an IPv6 address needs brackets, as in [::1]:{port}"));
        }
        (host, port)
    };
    let port =
        port.parse::<u16>().map_err(|_| format!("`{address}`: port `{port}` is not a number from 0 to 65535"))?;
    Ok((host, port))
}

/// Parses a listening address: `":8080"` (every interface), `"host:port"`,
/// `"[v6]:port"`. Host names are resolved now (first address wins).
pub fn parse_listen_address(address: &str) -> Result<ListenAddress, String> {
    let (host, port) = split_host_port(address)?;
    if host.is_empty() {
        return Ok(ListenAddress::AllInterfaces(port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ListenAddress::Addr(SocketAddr::new(ip, port)));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(ListenAddress::Addr)
        .ok_or_else(|| format!("`{address}`: cannot resolve host `{host}`"))
}

/// Checks a dial target (`"host:port"` or `"[v6]:port"`, port not 0). The
/// host is resolved when dialling, not now: backends may come up later.
pub fn check_target(target: &str) -> Result<(), String> {
    let (host, port) = split_host_port(target)?;
    if host.is_empty() {
        return Err(format!("`{target}`: a target needs a host"));
    }
    if port == 0 {
        return Err(format!("`{target}`: port 0 cannot be dialled"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_listen_addresses() {
        assert_eq!(parse_listen_address(":8080"), Ok(ListenAddress::AllInterfaces(8080)));
        assert_eq!(parse_listen_address(":0"), Ok(ListenAddress::AllInterfaces(0)));
        assert_eq!(parse_listen_address("127.0.0.1:80"), Ok(ListenAddress::Addr("127.0.0.1:80".parse().unwrap())));
        assert_eq!(parse_listen_address("[::1]:443"), Ok(ListenAddress::Addr("[::1]:443".parse().unwrap())));
        let localhost = parse_listen_address("localhost:22").unwrap();
        assert!(matches!(localhost, ListenAddress::Addr(a) if a.ip().is_loopback() && a.port() == 22));
        assert_eq!(ListenAddress::AllInterfaces(8080).socket_addr(), "[::]:8080".parse().unwrap());
    }

    #[test]
    fn bad_listen_addresses_say_why() {
        for (address, expected) in [
            ("8080", "expected host:port"),
            (":http", "not a number"),
            (":70000", "not a number"),
            ("::1:80", "needs brackets"),
            ("[::1]80", "expected `:port`"),
            ("[::1:80", "missing `]`"),
            ("no-such-host.invalid:80", "cannot resolve"),
        ] {
            let error = parse_listen_address(address).unwrap_err();
            assert!(error.contains(expected), "{address}: {error}");
        }
    }

    #[test]
    fn targets() {
        assert!(check_target("localhost:22").is_ok());
        assert!(check_target("[::1]:22").is_ok());
        assert!(check_target(":22").unwrap_err().contains("needs a host"));
        assert!(check_target("localhost:0").unwrap_err().contains("port 0"));
        assert!(check_target("localhost").unwrap_err().contains("expected host:port"));
    }
}
