//! The app under test, served over real HTTP on a loopback port.

use std::net::SocketAddr;

use axum::Router;
use tokio::task::JoinHandle;

/// A running axum server; stopped on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Serves `app` on 127.0.0.1 with a free port.
    pub async fn start(app: Router) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener.set_nonblocking(true).unwrap();
        Self::from_std(listener, app)
    }

    /// Serves `app` on an already bound (non-blocking) std listener.
    pub fn from_std(listener: std::net::TcpListener, app: Router) -> Self {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("server error");
        });
        Self { addr, task }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client that does not decompress, follow redirects or use a proxy: the tests see exactly what
/// the server sent.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `GET url` with these headers, through [`client`].
pub async fn get<V>(url: String, headers: &[(&str, V)]) -> reqwest::Response
where
    V: Clone,
    reqwest::header::HeaderValue: TryFrom<V>,
    <reqwest::header::HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
{
    let mut request = client().get(url);
    for (name, value) in headers {
        request = request.header(*name, value.clone());
    }
    request.send().await.unwrap()
}

/// The body of `GET url` as text, whatever the status.
pub async fn get_text(url: String) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Sends raw bytes (with `Connection: close`) and returns the whole raw response — for what an
/// ordinary client will not send, such as a chunked body with no `Content-Length`.
pub async fn raw_request(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("the server answered within 10 s")
    .ok();
    String::from_utf8_lossy(&response).into_owned()
}

/// Keeps what a browser would of `res`'s `Set-Cookie` headers in `cookies` (a `Cookie` request
/// header: `a=1; b=2`): each cookie set replaces the one of its name, a removal (`Max-Age=0`)
/// drops it.
pub fn keep_cookies(res: &reqwest::Response, cookies: &mut String) {
    let mut jar: Vec<(String, String)> = cookies
        .split("; ")
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    for set in res.headers().get_all("set-cookie") {
        let set = set.to_str().unwrap();
        let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
        jar.retain(|(kept, _)| kept != name);
        if !set.contains("Max-Age=0") {
            jar.push((name.to_owned(), value.to_owned()));
        }
    }
    *cookies = jar
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
}
