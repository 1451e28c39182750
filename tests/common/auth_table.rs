//! The authorization table of docs/security.md, parsed: one row per REST
//! operation, with its credential and (for a server key) its scope. Read by
//! tests/server_keys.rs and tests/credentials.rs, so a new route is covered
//! by both as soon as it has a row.

/// Every scope a server key can hold.
pub const SCOPES: [&str; 8] = [
    "chats:read",
    "chats:write",
    "messages:read",
    "messages:write",
    "members:write",
    "users:tokens",
    "webhooks",
    "admin",
];

/// One row of the authorization table: `METHOD /path`, credential, scope.
pub struct Row {
    pub method: String,
    pub path: String,
    pub credential: String,
    pub scope: Option<String>,
}

/// The rows, in the document's order.
pub fn table() -> Vec<Row> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md")).unwrap();
    let start = doc.find("<!-- authorization-table").expect("docs/security.md has no authorization table");
    let end = doc.find("<!-- end of authorization-table -->").expect("the authorization table has no end");
    let mut rows = Vec::new();
    for line in doc[start..end].lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 3, "a row of three cells: {line}");
        let (method, path) = cells[0].trim_matches('`').split_once(' ').unwrap();
        let scope = match cells[2] {
            "—" => None,
            s => Some(s.trim_matches('`').to_owned()),
        };
        if let Some(scope) = &scope {
            assert!(SCOPES.contains(&scope.as_str()), "unknown scope in {line}");
        }
        rows.push(Row {
            method: method.to_owned(),
            path: path.to_owned(),
            credential: cells[1].to_owned(),
            scope,
        });
    }
    assert!(rows.len() > 50, "only {} rows", rows.len());
    rows
}

/// A value for a path parameter other than `{token}`.
pub fn placeholder(name: &str) -> &'static str {
    match name {
        "number" | "message" => "1",
        "user" => "alice",
        "emoji" => "%F0%9F%91%8D",
        "id" | "session" => "AAAAAAAAAAAAAAAAAAAAAA",
        "device" => "phone",
        other => panic!("no placeholder for path parameter `{other}`: add one"),
    }
}

/// The row's path with `app` in the `{token}` slot and placeholders elsewhere.
pub fn url_for(path: &str, app: &str) -> String {
    path.split('/')
        .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some("token") => app,
            Some(name) => placeholder(name),
            None => segment,
        })
        .collect::<Vec<_>>()
        .join("/")
}
