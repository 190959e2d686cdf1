//! The console's form (`multipart/form-data`, read whole within the upload limit first):
//! `bootstrap_token`, then the uploaded `config_file` or the pasted `config`. A file field
//! without a file name is no file (a browser sends one when nothing was chosen), and a pasted
//! config of blanks is none; the file wins over the text, as in the original.

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;

/// The config the form carries.
#[derive(Debug)]
pub enum Config {
    /// An uploaded file (a config.toml or a bundle) and its name as the browser gave it.
    File {
        /// The file name.
        name: String,
        /// The content.
        bytes: Bytes,
    },
    /// A pasted config.toml.
    Pasted(String),
}

/// The form's fields.
#[derive(Debug)]
pub struct Form {
    /// `bootstrap_token` (empty when absent).
    pub token: String,
    /// The config, if any.
    pub config: Option<Config>,
}

/// Why the form cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    /// No `multipart/form-data` content type with a boundary.
    #[error("the form is not multipart/form-data")]
    NotMultipart,
    /// The multipart body is malformed.
    #[error("the form is malformed")]
    Malformed(#[from] multer::Error),
}

/// Reads the form from its whole `body`.
pub async fn read(headers: &HeaderMap, body: Bytes) -> Result<Form, FormError> {
    let boundary = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok())
        .ok_or(FormError::NotMultipart)?;
    let whole = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(whole, boundary);
    let mut token = String::new();
    let (mut file, mut pasted) = (None, None);
    while let Some(field) = multipart.next_field().await? {
        match field.name() {
            Some("bootstrap_token") => token = field.text().await?,
            Some("config_file") => {
                let name = field.file_name().unwrap_or_default().to_owned();
                let bytes = field.bytes().await?;
                if !name.is_empty() {
                    file = Some(Config::File { name, bytes });
                }
            }
            Some("config") => {
                let text = field.text().await?;
                if !text.trim().is_empty() {
                    pasted = Some(Config::Pasted(text));
                }
            }
            _ => {}
        }
    }
    Ok(Form {
        token,
        config: file.or(pasted),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multipart(parts: &[(&str, Option<&str>, &str)]) -> (HeaderMap, Bytes) {
        let mut body = String::new();
        for (name, file, value) in parts {
            body.push_str("--XYZ\r\n");
            match file {
                Some(f) => body.push_str(&format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )),
                None => body.push_str(&format!(
                    "Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                )),
            }
            body.push_str(value);
            body.push_str("\r\n");
        }
        body.push_str("--XYZ--\r\n");
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            "multipart/form-data; boundary=XYZ".parse().unwrap(),
        );
        (headers, Bytes::from(body))
    }

    #[tokio::test]
    async fn the_file_wins_an_unnamed_file_and_blank_text_are_none() {
        let (h, b) = multipart(&[
            ("bootstrap_token", None, "tok"),
            ("config_file", Some("seed.toml"), "version = 1"),
            ("config", None, "pasted"),
        ]);
        let form = read(&h, b).await.unwrap();
        assert_eq!(form.token, "tok");
        match form.config {
            Some(Config::File { name, bytes }) => {
                assert_eq!(
                    (name.as_str(), &bytes[..]),
                    ("seed.toml", &b"version = 1"[..])
                );
            }
            other => panic!("{other:?}"),
        }
        let (h, b) = multipart(&[
            ("config_file", Some(""), ""),
            ("config", None, "version = 1\n"),
        ]);
        let form = read(&h, b).await.unwrap();
        assert_eq!(form.token, "");
        assert!(matches!(form.config, Some(Config::Pasted(t)) if t == "version = 1\n"));
        let (h, b) = multipart(&[("config_file", Some(""), ""), ("config", None, " \n ")]);
        assert!(read(&h, b).await.unwrap().config.is_none());
    }

    #[tokio::test]
    async fn not_multipart_or_malformed() {
        let err = read(&HeaderMap::new(), Bytes::new()).await.unwrap_err();
        assert!(matches!(err, FormError::NotMultipart));
        let (h, _) = multipart(&[]);
        let err = read(&h, Bytes::from_static(b"--XYZ\r\nbroken")).await;
        assert!(err.is_err());
    }
}
