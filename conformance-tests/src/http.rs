//! The HTTP side: POST a JSON body to `{base}/csc/v1/{method}` (or `/csc/v2/`) with a chosen
//! Authorization header, and keep every answer that is not a success, for the error-body checks
//! (§10.1).

use std::time::Duration;

use serde_json::Value;

/// The Authorization header of a request.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// No Authorization header at all.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// `Authorization: Basic base64(user:password)`.
    Basic(&'a str, &'a str),
    /// The header value as given.
    Raw(&'a str),
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Resp {
    /// 0 when no HTTP answer came (connection refused, timeout, ...).
    pub status: u16,
    pub content_type: Option<String>,
    pub text: String,
    /// The body as JSON, when it is JSON.
    pub json: Option<Value>,
}

impl Resp {
    /// The body's string member `name`.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.json.as_ref()?.get(name)?.as_str()
    }

    /// The body's member `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.json.as_ref()?.get(name)
    }

    /// `200 {"SAD": ...}` in short, for messages.
    pub fn brief(&self) -> String {
        let body: String = if self.text.chars().count() > 300 {
            let cut: String = self.text.chars().take(300).collect();
            format!("{cut}...")
        } else {
            self.text.clone()
        };
        let body = body.replace('\n', " ");
        match self.status {
            0 => format!("no answer ({body})"),
            s if body.trim().is_empty() => format!("{s} (empty body)"),
            s => format!("{s} {}", body.trim()),
        }
    }

    pub fn is_json_content_type(&self) -> bool {
        self.content_type.as_deref().is_some_and(|c| {
            c.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        })
    }
}

/// A request that was answered with an error status, kept for the §10.1 checks.
#[derive(Debug, Clone)]
pub struct Observed {
    /// e.g. `credentials/info {"credentialID":"..."}`.
    pub request: String,
    pub resp: Resp,
}

pub struct Http {
    base: String,
    /// `v1` or `v2`: the path segment after `/csc/`.
    segment: &'static str,
    client: reqwest::blocking::Client,
    /// Every answer with a 4xx/5xx status, in order.
    pub errors: Vec<Observed>,
}

impl Http {
    /// A client of `{base_url}/csc/v1/`.
    pub fn new(base_url: &str, timeout: Duration) -> Http {
        Http::for_api(base_url, crate::Api::V1, timeout)
    }

    /// A client of `{base_url}/csc/{v1|v2}/`.
    pub fn for_api(base_url: &str, api: crate::Api, timeout: Duration) -> Http {
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_else(|_| reqwest::blocking::Client::new());
        Http {
            base: base_url.trim_end_matches('/').to_owned(),
            segment: api.segment(),
            client,
            errors: Vec::new(),
        }
    }

    pub fn url(&self, method: &str) -> String {
        format!("{}/csc/{}/{method}", self.base, self.segment)
    }

    /// POST `body` as JSON to `method`.
    pub fn post(&mut self, method: &str, auth: Auth<'_>, body: &Value) -> Resp {
        let text = body.to_string();
        self.post_raw(method, auth, &text)
    }

    /// POST `body` (sent as is, with `Content-Type: application/json`) to `method`.
    pub fn post_raw(&mut self, method: &str, auth: Auth<'_>, body: &str) -> Resp {
        let mut req = self
            .client
            .post(self.url(method))
            .header("content-type", "application/json")
            .body(body.to_owned());
        req = match auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::Raw(h) => req.header("authorization", h),
        };
        let resp = match req.send() {
            Ok(r) => {
                let status = r.status().as_u16();
                let content_type = r
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let text = r.text().unwrap_or_default();
                let json = serde_json::from_str(&text).ok();
                Resp {
                    status,
                    content_type,
                    text,
                    json,
                }
            }
            Err(e) => Resp {
                status: 0,
                content_type: None,
                text: e.to_string(),
                json: None,
            },
        };
        if resp.status >= 400 {
            let shown: String = body.chars().take(200).collect();
            self.errors.push(Observed {
                request: format!("{method} {shown}"),
                resp: resp.clone(),
            });
        }
        resp
    }
}
