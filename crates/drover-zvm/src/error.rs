//! The backend's errors: each is one row of z/VM Cloud Connector's return-code table
//! (`overallRC`, `modID`, `rc`, `rs` and a message), so both the REST layer and the socket
//! protocol answer with the codes the original does.

use serde_json::{json, Value as Json};

/// The module a z/VM Cloud Connector error is raised by (its `modID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    /// The directory manager (`SMT`).
    Smt,
    /// Guests.
    Guest,
    /// NICs and vswitches.
    Network,
    /// Volumes and FCP devices.
    Volume,
    /// Images.
    Image,
    /// Metrics.
    Monitor,
    /// File transfer.
    File,
    /// The socket server.
    SdkServer,
    /// The REST layer.
    SdkWsgi,
    /// The SDK in general.
    Sdk,
}

impl Module {
    /// The module's `modID`.
    pub fn id(self) -> i64 {
        match self {
            Module::Smt => 1,
            Module::Guest => 10,
            Module::Network => 20,
            Module::Volume => 30,
            Module::Image => 40,
            Module::Monitor => 50,
            Module::File => 60,
            Module::SdkServer => 100,
            Module::SdkWsgi => 120,
            Module::Sdk => 400,
        }
    }
}

/// A failed call, as the original's return-code table defines it.
#[derive(Debug, Clone, PartialEq)]
pub enum ZvmError {
    /// `100/400/100/1`: wrong number of arguments.
    ArgCount {
        /// The call.
        api: String,
        /// Arguments it takes.
        expected: usize,
        /// Arguments given.
        provided: usize,
    },
    /// `100/400/100/2`: an argument of the wrong type.
    ArgType {
        /// The call.
        api: String,
        /// The types it takes.
        expected: String,
        /// The types given.
        given: String,
    },
    /// `100/400/100/3`: an argument in the wrong format or range.
    ArgFormat(String),
    /// `100/400/100/4`: a required option is missing.
    MissingOption(String),
    /// `8/1/rc/rs`: the directory manager refused (e.g. `400/8`, the userid is taken).
    Smt {
        /// Its rc.
        rc: i64,
        /// Its rs.
        rs: i64,
        /// Message.
        msg: String,
    },
    /// `300/mod/300/rs`: a module's own failure.
    Failed {
        /// The module.
        module: Module,
        /// Its reason code.
        rs: i64,
        /// Message.
        msg: String,
    },
    /// `404/mod/404/1`: `"<what> does not exist."`.
    NotExist {
        /// The module.
        module: Module,
        /// What is missing, e.g. `Guest 'USER1'`.
        what: String,
    },
    /// `409/mod/409/1`: `"<what> already exists."`.
    AlreadyExists {
        /// The module.
        module: Module,
        /// What exists.
        what: String,
    },
    /// `409/mod/409/rs`: the object's state conflicts with the request.
    Conflict {
        /// The module.
        module: Module,
        /// Reason code of the conflict table.
        rs: i64,
        /// Message.
        msg: String,
    },
    /// `500/mod/500/1`: an unexpected failure.
    Internal {
        /// The module.
        module: Module,
        /// What went wrong.
        msg: String,
    },
    /// `501/mod/501/1`: the function is not part of this release.
    NotSupported {
        /// The module.
        module: Module,
        /// The function.
        func: String,
    },
    /// `503/120/503/1`: too many deploys and captures at once.
    Unavailable(String),
    /// `400/100/400/1`: the socket protocol named no known call.
    ApiName(String),
}

impl ZvmError {
    /// `Guest '<userid>' does not exist.`
    pub fn no_guest(userid: &str) -> Self {
        ZvmError::NotExist {
            module: Module::Guest,
            what: format!("Guest '{userid}'"),
        }
    }

    /// `Guest '<userid>' is not in active status.`
    pub fn not_active(userid: &str) -> Self {
        ZvmError::Conflict {
            module: Module::Guest,
            rs: 1,
            msg: format!("Guest '{userid}' is not in active status."),
        }
    }

    /// An unexpected failure of a module.
    pub fn internal(module: Module, msg: impl Into<String>) -> Self {
        ZvmError::Internal {
            module,
            msg: msg.into(),
        }
    }

    /// `(overallRC, modID, rc, rs)`.
    pub fn codes(&self) -> (i64, Json, i64, i64) {
        use ZvmError::*;
        let sdk = Module::Sdk.id();
        match self {
            ArgCount { .. } => (100, json!(sdk), 100, 1),
            ArgType { .. } => (100, json!(sdk), 100, 2),
            ArgFormat(_) => (100, json!(sdk), 100, 3),
            MissingOption(_) => (100, json!(sdk), 100, 4),
            Smt { rc, rs, .. } => (8, json!(Module::Smt.id()), *rc, *rs),
            Failed { module, rs, .. } => (300, json!(module.id()), 300, *rs),
            NotExist { module, .. } => (404, json!(module.id()), 404, 1),
            AlreadyExists { module, .. } => (409, json!(module.id()), 409, 1),
            Conflict { module, rs, .. } => (409, json!(module.id()), 409, *rs),
            Internal { module, .. } => (500, json!(module.id()), 500, 1),
            NotSupported { module, .. } => (501, json!(module.id()), 501, 1),
            Unavailable(_) => (503, json!(Module::SdkWsgi.id()), 503, 1),
            ApiName(_) => (400, json!(Module::SdkServer.id()), 400, 1),
        }
    }

    /// The `errmsg` text.
    pub fn message(&self) -> String {
        use ZvmError::*;
        match self {
            ArgCount {
                api,
                expected,
                provided,
            } => format!(
                "Invalid API arg count, API: {api}, {expected} expected while {provided} provided."
            ),
            ArgType {
                api,
                expected,
                given,
            } => format!(
                "Invalid API arg type, API: {api}, expected types: '{expected}', input types: '{given}'"
            ),
            ArgFormat(msg) => format!("Invalid API arg format, error: {msg}"),
            MissingOption(msg) => format!("Missing required option: {msg}"),
            Smt { msg, .. } | Failed { msg, .. } | Conflict { msg, .. } => msg.clone(),
            NotExist { what, .. } => format!("{what} does not exist."),
            AlreadyExists { what, .. } => format!("{what} already exists."),
            Internal { msg, .. } => format!("Unexpected internal error in ZVM SDK, error: {msg}"),
            NotSupported { func, .. } => format!(
                "The requested function: {func} has not been implemented in current release"
            ),
            Unavailable(req) => format!(
                "Max concurrent deploy/capture requests received, request is rejected. {req}"
            ),
            ApiName(name) => format!("Invalid API name, '{name}'"),
        }
    }
}

impl std::fmt::Display for ZvmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ZvmError {}

/// What a backend call returns.
pub type ZvmResult<T = Json> = Result<T, ZvmError>;
