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
