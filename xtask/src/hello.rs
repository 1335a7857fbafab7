//! The baseline of `bench serve`: the smallest axum server, one route answering "Hello, World!".

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let port: u16 = match args {
        [flag, p] if flag == "--port" => p.parse().map_err(|_| format!("bad port {p:?}"))?,
        _ => return Err("usage: cargo xtask hello-server --port N".into()),
    };
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "Hello, World!" }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        axum::serve(listener, app).await.map_err(|e| e.to_string())
    })
}
