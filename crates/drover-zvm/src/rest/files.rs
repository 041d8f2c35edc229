//! `PUT /files` (upload a file into the connector's file repository; the answer names it as a
//! `file://` URL that `image_import` takes) and `POST /files` (download a file of the
//! repository, such as an exported image). Only files inside the connector's work directory
//! can be downloaded.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use futures_util::TryStreamExt;
use md5::{Digest, Md5};
use serde_json::{json, Value as Json};
use tokio::io::AsyncWriteExt;

use super::reply;
use crate::api::ZvmConfig;
use crate::error::{Module, ZvmError};

/// Where uploads go.
fn repository(config: &ZvmConfig) -> PathBuf {
    config.work_dir.join("files").join("imported")
}

/// A failed upload, in the original's words.
fn import_failed(e: &std::io::Error) -> ZvmError {
    ZvmError::Failed {
        module: Module::File,
        rs: 1,
        msg: format!(
            "File import error: {e}, please check access right to specified file or folder"
        ),
    }
}

/// `PUT /files`.
pub async fn import(config: &ZvmConfig, body: Body) -> Response<Body> {
    let result = store(config, body).await.map_err(|e| {
        tracing::warn!("file import failed: {e}");
        import_failed(&e)
    });
    reply::result(&result, reply::Mapper::Plain)
}

async fn store(config: &ZvmConfig, body: Body) -> std::io::Result<Json> {
    let dir = repository(config);
    tokio::fs::create_dir_all(&dir).await?;
    let path = dir.join(drover_core::txn::new_uuid());
    let mut out = tokio::fs::File::create(&path).await?;
    let mut md5 = Md5::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    let written: std::io::Result<()> = async {
        while let Some(chunk) = stream.try_next().await.map_err(std::io::Error::other)? {
            md5.update(&chunk);
            size += chunk.len() as u64;
            out.write_all(&chunk).await?;
        }
        out.sync_all().await
    }
    .await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e);
    }
    Ok(json!({
        "filesize_in_bytes": size,
        "dest_url": format!("file://{}", path.display()),
        "md5sum": format!("{:x}", md5.finalize()),
    }))
}

/// `POST /files` with `{"source_file": path}`.
pub async fn export(config: &ZvmConfig, body: &Json) -> Response<Body> {
    // The original reads `body['source_file']` (anything else is an unhandled error) and
    // answers a file it cannot export as one that does not exist; here, files outside the
    // work directory are such files too.
    let source = match body.get("source_file") {
        Some(Json::String(s)) => s.as_str(),
        _ => return reply::internal(),
    };
    let missing = || ZvmError::Failed {
        module: Module::File,
        rs: 2,
        msg: format!("The specific file {source} for export does not exist"),
    };
    match open_inside(&config.work_dir, Path::new(source)).await {
        Some(file) => {
            let mut r = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(file)));
            *r.status_mut() = StatusCode::OK;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => reply::result(&Err(missing()), reply::Mapper::Plain),
    }
}

/// Opens `path` if it is a file inside `root`.
async fn open_inside(root: &Path, path: &Path) -> Option<tokio::fs::File> {
    let root = tokio::fs::canonicalize(root).await.ok()?;
    let real = tokio::fs::canonicalize(path).await.ok()?;
    if !real.starts_with(&root) || !tokio::fs::metadata(&real).await.ok()?.is_file() {
        return None;
    }
    tokio::fs::File::open(real).await.ok()
}
