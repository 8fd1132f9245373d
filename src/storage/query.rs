//! Building `WHERE` clauses from optional filters with `$n` placeholders, for list queries whose
//! filters vary. Binding only the values present avoids `$1 IS NULL` tricks, which PostgreSQL
//! cannot type.

use sqlx::any::AnyArguments;
use sqlx::query::QueryAs;
use sqlx::Any;

/// A bound value.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
}

#[derive(Debug, Default)]
pub struct Filter {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Filter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value and returns its placeholder (`$n`).
    pub fn arg(&mut self, value: Arg) -> String {
        self.args.push(value);
        format!("${}", self.args.len())
    }

    /// Adds a condition (use placeholders from [`Self::arg`]).
    pub fn clause(&mut self, condition: impl Into<String>) {
        self.clauses.push(condition.into());
    }

    /// `column = value`.
    pub fn eq(&mut self, column: &str, value: Arg) {
        let p = self.arg(value);
        self.clause(format!("{column} = {p}"));
    }

    /// Rows strictly after the cursor in `(created_at DESC, id DESC)` order.
    pub fn before(&mut self, cursor: Option<&crate::storage::PageCursor>) {
        if let Some((created_at, id)) = cursor {
            let at = self.arg(Arg::Int(*created_at));
            let id = self.arg(Arg::Text(id.clone()));
            self.clause(format!(
                "(created_at < {at} OR (created_at = {at} AND id < {id}))"
            ));
        }
    }

    /// ` WHERE … AND …`, or nothing.
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    pub fn args(&self) -> &[Arg] {
        &self.args
    }
}

pub fn bind_all<'q, O>(
    mut query: QueryAs<'q, Any, O, AnyArguments<'q>>,
    args: &'q [Arg],
) -> QueryAs<'q, Any, O, AnyArguments<'q>> {
    for arg in args {
        query = match arg {
            Arg::Text(s) => query.bind(s.as_str()),
            Arg::Int(i) => query.bind(*i),
        };
    }
    query
}
