//! URL helpers shared by the HTTP side and the domain (TURN URIs, RTMP URLs): no HTTP types.

/// The host of a base URL, without scheme, port or path (`[v6]` kept in brackets).
pub fn url_host(base: &str) -> &str {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if authority.starts_with('[') {
        return authority
            .find(']')
            .and_then(|i| authority.get(..=i))
            .unwrap_or(authority);
    }
    authority.split(':').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(url_host("https://venue.example.org"), "venue.example.org");
        assert_eq!(url_host("http://localhost:8080/x"), "localhost");
        assert_eq!(url_host("http://[::1]:8080"), "[::1]");
        assert_eq!(url_host("http://u@h:1"), "h");
    }
}
