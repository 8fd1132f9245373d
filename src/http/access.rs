//! Authorisation checks shared by the organisation-scoped resources.

use crate::auth::{Principal, Role};
use crate::error::ApiError;

/// Owners and staff: the organisation's employees.
pub const EMPLOYEES: &[Role] = &[Role::Owner, Role::Staff];
pub const OWNERS: &[Role] = &[Role::Owner];

impl Principal {
    /// Checks in the order that keeps other tenants invisible: the organisation first (404 for any
    /// other, whatever the role), then the role (403), then a verified email.
    pub fn require_org_role(&self, org_id: &str, roles: &[Role]) -> Result<(), ApiError> {
        self.require_org(org_id)?;
        self.require_role(roles)?;
        self.require_verified()
    }

    pub fn require_superuser(&self) -> Result<(), ApiError> {
        if self.is_superuser() {
            Ok(())
        } else {
            Err(ApiError::forbidden("only a platform superuser may do this"))
        }
    }
}

/// The organisation, for one of its owners or staff: other tenants get 404, other roles 403.
pub async fn employees_org(
    state: &crate::state::AppState,
    principal: &Principal,
    org_id: &str,
) -> Result<crate::storage::orgs::OrgRow, ApiError> {
    principal.require_org_role(org_id, EMPLOYEES)?;
    state
        .db
        .org(org_id)
        .await?
        .ok_or_else(|| ApiError::not_found("organisation"))
}
