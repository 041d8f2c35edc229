//! Tasks: the persisted record of an asynchronous operation, its progress, result and
//! cancellation.

use drover_model::Value;
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::db::Ref;
use crate::engine::{now, Engine};
use crate::error::{CoreError, Result};
use crate::ops::{Reply, TaskRender};

impl Engine {
    /// A pending task of `caller`, with the client's correlation id in `other_config` if given.
    pub(crate) fn create_task(
        &self,
        caller: &Caller,
        label: &str,
        correlation_id: Option<&str>,
    ) -> Result<(Ref, CancellationToken)> {
        let host = self.this_host();
        let mut other_config = vec![("owner", caller.user.as_str())];
        if let Some(id) = correlation_id {
            other_config.push(("correlation_id", id));
        }
        let task = self.write(|t| {
            t.create(
                "task",
                vec![
                    ("name_label", Value::str(label)),
                    ("status", Value::str("pending")),
                    ("created", Value::DateTime(now())),
                    ("resident_on", Value::str(&*host)),
                    ("progress", Value::Float(0.0)),
                    ("allowed_operations", Value::Set(vec![Value::str("cancel")])),
                    ("other_config", Value::string_map(other_config)),
                ],
            )
        })?;
        let token = CancellationToken::new();
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(task.clone(), token.clone());
        Ok((task, token))
    }

    pub(crate) fn complete_task(
        &self,
        task: &Ref,
        outcome: Result<Reply>,
        render: &dyn TaskRender,
    ) {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(task);
        let (status, result, error) = match &outcome {
            Ok(reply) => ("success", render.result(reply), Vec::new()),
            Err(e @ CoreError::TaskCancelled(_)) => ("cancelled", String::new(), render.error(e)),
            Err(e) => ("failure", String::new(), render.error(e)),
        };
        let written = self.write(|t| {
            if t.get("task", task).is_none() {
                return Ok(());
            }
            t.set("task", task, "status", Value::str(status))?;
            t.set("task", task, "progress", Value::Float(1.0))?;
            t.set("task", task, "finished", Value::DateTime(now()))?;
            t.set("task", task, "result", Value::str(result))?;
            t.set(
                "task",
                task,
                "error_info",
                Value::Set(error.into_iter().map(Value::Str).collect()),
            )?;
            t.set("task", task, "allowed_operations", Value::empty_set())
        });
        if let Err(e) = written {
            tracing::error!(%task, error = %e, "could not record the end of a task");
        }
    }

    pub(crate) fn cancel_task(&self, task: &str) -> Result<()> {
        let record = self.get("task", task)?;
        if record.str("status") != "pending" {
            return Err(CoreError::OperationNotAllowed(format!(
                "task {task} is {}",
                record.str("status")
            )));
        }
        let token = self
            .cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(task)
            .cloned();
        let token = token.ok_or_else(|| {
            CoreError::OperationNotAllowed(format!("task {task} cannot be cancelled"))
        })?;
        self.write(|t| {
            t.set("task", task, "status", Value::str("cancelling"))?;
            t.set("task", task, "allowed_operations", Value::empty_set())
        })?;
        token.cancel();
        Ok(())
    }
}
