use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, PASSWORD};

#[tokio::test]
async fn an_invited_employee_joins_and_appears_in_the_list() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let email = "coach.sam@example.com";
    let (invitation, token) = app.invite(&owner, "Coach.Sam@Example.com", "staff").await;
    assert_eq!(invitation["email"], email);
    assert_eq!(invitation["status"], "pending");
    assert_eq!(invitation["role"], "staff");
    assert_eq!(invitation["invited_by"], owner.id.as_str());

    let details = app
        .client
        .get(app.api(&format!("/auth/invitations/verify/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(details.status(), 200);
    let details: Value = details.json().await.unwrap();
    assert_eq!(details["org"]["id"], owner.org_id.as_str());
    assert_eq!(details["org"]["name"], "Acme Wellness");
    assert_eq!(details["email"], email);
    assert_eq!(details["role"], "staff");

    // A refused password leaves the invitation usable.
    let weak = app
        .post_json(
            &format!("/auth/invitations/{token}/accept"),
            json!({"password": "coach.sam-2024"}),
        )
        .await;
    assert_problem(weak, 422, "VALIDATION_FAILED").await;

    let accepted = app
        .post_json(
            &format!("/auth/invitations/{token}/accept/"),
            json!({"password": PASSWORD, "displayName": "Sam"}),
        )
        .await;
    assert_eq!(accepted.status(), 201);
    let accepted: Value = accepted.json().await.unwrap();
    assert_eq!(accepted["user"]["roles"], json!(["staff"]));
    assert_eq!(accepted["user"]["email_verified"], true);
    assert_eq!(accepted["user"]["org"]["id"], owner.org_id.as_str());
    let staff_access = accepted["accessToken"].as_str().unwrap();
    let staff_id = accepted["user"]["id"].as_str().unwrap();

    // Used: the link is dead now.
    let again = app
        .post_json(
            &format!("/auth/invitations/{token}/accept"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_problem(again, 400, "INVALID_TOKEN").await;
    let details = app
        .client
        .get(app.api(&format!("/auth/invitations/verify/{token}")))
        .send()
        .await
        .unwrap();
    assert_problem(details, 400, "INVALID_TOKEN").await;

    app.login(email, PASSWORD).await;
    let list = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/employee", owner.org_id),
            staff_access,
            None,
            200,
        )
        .await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![staff_id, owner.id.as_str()]);
    let one = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/employee/{staff_id}", owner.org_id),
            staff_access,
            None,
            200,
        )
        .await;
    assert_eq!(one["display_name"], "Sam");
    assert_eq!(one["role"], "staff");

    let invitations = app
        .ok(
            Method::GET,
            &format!(
                "/orgs/{}/employee/invitations?status=accepted",
                owner.org_id
            ),
            &owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(invitations["data"][0]["status"], "accepted");
    assert!(invitations["data"][0]["accepted_at"].is_string());
    assert_eq!(app.audit_count("invitation.created").await, 1);
    assert_eq!(app.audit_count("invitation.accepted").await, 1);
}

#[tokio::test]
async fn members_are_not_employees() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let pk = app.api_key(&owner, "publishable").await;
    let member = app.member(&pk).await;
    let list = app
        .ok(
            Method::GET,
            &format!("/orgs/{}/employee", owner.org_id),
            &owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let as_employee = app
        .get_auth(
            &format!("/orgs/{}/employee/{}", owner.org_id, member.id),
            &owner.access,
        )
        .await;
    assert_problem(as_employee, 404, "NOT_FOUND").await;
    let promote = app
        .call(
            Method::PATCH,
            &format!("/orgs/{}/employee/{}", owner.org_id, member.id),
            Some(&owner.access),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_problem(promote, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn roles_change_and_the_last_owner_stays() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let staff = app.employee(&owner, "staff").await;
    let base = format!("/orgs/{}/employee", owner.org_id);

    // The only owner can neither step down nor leave.
    let demote = app
        .call(
            Method::PATCH,
            &format!("{base}/{}", owner.id),
            Some(&owner.access),
            Some(json!({"role": "staff"})),
        )
        .await;
    assert_problem(demote, 409, "LAST_OWNER").await;
    let leave = app
        .call(
            Method::DELETE,
            &format!("{base}/{}", owner.id),
            Some(&owner.access),
            None,
        )
        .await;
    assert_problem(leave, 409, "LAST_OWNER").await;

    // Staff cannot change roles.
    let by_staff = app
        .call(
            Method::PATCH,
            &format!("{base}/{}", staff.id),
            Some(&staff.access),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_problem(by_staff, 403, "FORBIDDEN").await;
    let invalid = app
        .call(
            Method::PATCH,
            &format!("{base}/{}", staff.id),
            Some(&owner.access),
            Some(json!({"role": "superuser"})),
        )
        .await;
    assert_problem(invalid, 422, "VALIDATION_FAILED").await;

    let promoted = app
        .ok(
            Method::PATCH,
            &format!("{base}/{}", staff.id),
            &owner.access,
            Some(json!({"role": "owner"})),
            200,
        )
        .await;
    assert_eq!(promoted["role"], "owner");
    // The new role applies at once, without a new token.
    app.ok(
        Method::GET,
        &format!("/orgs/{}/credentials", owner.org_id),
        &staff.access,
        None,
        200,
    )
    .await;

    // With two owners, the first may step down; then the second is the last one.
    app.ok(
        Method::PATCH,
        &format!("{base}/{}", owner.id),
        &owner.access,
        Some(json!({"role": "staff"})),
        200,
    )
    .await;
    assert_problem(
        app.get_auth(
            &format!("/orgs/{}/credentials", owner.org_id),
            &owner.access,
        )
        .await,
        403,
        "FORBIDDEN",
    )
    .await;
    let last = app
        .call(
            Method::PATCH,
            &format!("{base}/{}", staff.id),
            Some(&staff.access),
            Some(json!({"role": "staff"})),
        )
        .await;
    assert_problem(last, 409, "LAST_OWNER").await;

    let mut db = app.db().await;
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_logs WHERE action = 'employee.role_changed' AND org_id = $1",
    )
    .bind(&owner.org_id)
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn a_removed_employee_is_signed_out_at_once() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let staff = app.employee(&owner, "staff").await;
    let path = format!("/orgs/{}/employee/{}", owner.org_id, staff.id);
    let by_staff = app
        .call(Method::DELETE, &path, Some(&staff.access), None)
        .await;
    assert_problem(by_staff, 403, "FORBIDDEN").await;
    let removed = app
        .call(Method::DELETE, &path, Some(&owner.access), None)
        .await;
    assert_eq!(removed.status(), 204);
    assert_problem(
        app.get_auth("/auth/me", &staff.access).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_problem(app.get_auth(&path, &owner.access).await, 404, "NOT_FOUND").await;
    let again = app
        .call(Method::DELETE, &path, Some(&owner.access), None)
        .await;
    assert_problem(again, 404, "NOT_FOUND").await;
    assert_eq!(app.audit_count("employee.removed").await, 1);
    // The address is free again: they can be re-invited.
    app.invite(&owner, &staff.email, "staff").await;
}

#[tokio::test]
async fn invitations_can_be_cancelled_resent_and_expire() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let base = format!("/orgs/{}/employee/invitations", owner.org_id);

    let (first, first_token) = app.invite(&owner, "ana@example.com", "owner").await;
    let first_id = first["id"].as_str().unwrap();
    // One pending invitation per address; accounts cannot be invited again.
    let duplicate = app
        .call(
            Method::POST,
            &base,
            Some(&owner.access),
            Some(json!({"email": "ana@example.com"})),
        )
        .await;
    assert_problem(duplicate, 409, "INVITATION_PENDING").await;
    let existing = app
        .call(
            Method::POST,
            &base,
            Some(&owner.access),
            Some(json!({"email": owner.email})),
        )
        .await;
    assert_problem(existing, 409, "EMAIL_TAKEN").await;
    let invalid = app
        .call(
            Method::POST,
            &base,
            Some(&owner.access),
            Some(json!({"email": "nope", "role": "staff"})),
        )
        .await;
    assert_problem(invalid, 422, "VALIDATION_FAILED").await;
    let member_role = app
        .call(
            Method::POST,
            &base,
            Some(&owner.access),
            Some(json!({"email": "m@example.com", "role": "member"})),
        )
        .await;
    assert_problem(member_role, 422, "VALIDATION_FAILED").await;

    // Resending replaces the link.
    let resent = app
        .ok(
            Method::POST,
            &format!("{base}/{first_id}/resend"),
            &owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(resent["id"], first_id);
    let second_token = app.mailed_token("ana@example.com", "invitation").await;
    assert_ne!(first_token, second_token);
    let stale = app
        .client
        .get(app.api(&format!("/auth/invitations/verify/{first_token}")))
        .send()
        .await
        .unwrap();
    assert_problem(stale, 400, "INVALID_TOKEN").await;
    let fresh = app
        .client
        .get(app.api(&format!("/auth/invitations/verify/{second_token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);

    // Cancelling kills the link; a cancelled invitation can be neither cancelled nor resent.
    let cancelled = app
        .call(
            Method::DELETE,
            &format!("{base}/{first_id}"),
            Some(&owner.access),
            None,
        )
        .await;
    assert_eq!(cancelled.status(), 204);
    let accept = app
        .post_json(
            &format!("/auth/invitations/{second_token}/accept"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_problem(accept, 400, "INVALID_TOKEN").await;
    for (method, path) in [
        (Method::DELETE, format!("{base}/{first_id}")),
        (Method::POST, format!("{base}/{first_id}/resend")),
    ] {
        let response = app.call(method, &path, Some(&owner.access), None).await;
        assert_problem(response, 409, "INVITATION_CLOSED").await;
    }

    // Expiry: the link stops working, the list says so, and a resend revives it.
    let (second, token) = app.invite(&owner, "ben@example.com", "staff").await;
    let second_id = second["id"].as_str().unwrap();
    app.exec(
        "UPDATE one_time_tokens SET expires_at = 1 WHERE id = $1",
        &[second_id],
    )
    .await;
    let expired = app
        .post_json(
            &format!("/auth/invitations/{token}/accept"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_problem(expired, 400, "INVALID_TOKEN").await;
    let expired_list = app
        .ok(
            Method::GET,
            &format!("{base}?status=expired"),
            &owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(expired_list["data"].as_array().unwrap().len(), 1);
    assert_eq!(expired_list["data"][0]["id"], second_id);
    let all = app
        .ok(
            Method::GET,
            &format!("{base}?limit=1"),
            &owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1);
    let cursor = all["next_cursor"].as_str().unwrap();
    let rest = app
        .ok(
            Method::GET,
            &format!("{base}?limit=1&cursor={cursor}"),
            &owner.access,
            None,
            200,
        )
        .await;
    assert_eq!(rest["data"][0]["status"], "cancelled");
    assert_eq!(rest["next_cursor"], Value::Null);

    app.ok(
        Method::POST,
        &format!("{base}/{second_id}/resend"),
        &owner.access,
        None,
        200,
    )
    .await;
    let revived = app.mailed_token("ben@example.com", "invitation").await;
    let accepted = app
        .post_json(
            &format!("/auth/invitations/{revived}/accept"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(accepted.status(), 201);

    let bad_status = app
        .call(
            Method::GET,
            &format!("{base}?status=lost"),
            Some(&owner.access),
            None,
        )
        .await;
    assert_eq!(bad_status.status(), 400);
    let forged = app
        .client
        .get(app.api("/auth/invitations/verify/forged-token"))
        .send()
        .await
        .unwrap();
    assert_problem(forged, 400, "INVALID_TOKEN").await;
    assert_eq!(app.audit_count("invitation.cancelled").await, 1);
    assert_eq!(app.audit_count("invitation.resent").await, 2);
}

#[tokio::test]
async fn staff_cannot_manage_invitations() {
    let app = spawn_app().await;
    let owner = app.owner().await;
    let staff = app.employee(&owner, "staff").await;
    let base = format!("/orgs/{}/employee/invitations", owner.org_id);
    let create = app
        .call(
            Method::POST,
            &base,
            Some(&staff.access),
            Some(json!({"email": "x@example.com"})),
        )
        .await;
    assert_problem(create, 403, "FORBIDDEN").await;
    assert_problem(app.get_auth(&base, &staff.access).await, 403, "FORBIDDEN").await;
}

/// Two owners demoting each other at once: one wins, the organisation keeps an owner.
#[tokio::test]
async fn concurrent_demotions_leave_an_owner() {
    let app = spawn_app().await;
    for _ in 0..3 {
        let first = app.owner().await;
        let second = app.employee(&first, "owner").await;
        let base = format!("/orgs/{}/employee", first.org_id);
        let (second_path, first_path) = (
            format!("{base}/{}", second.id),
            format!("{base}/{}", first.id),
        );
        let demote_second = app.call(
            Method::PATCH,
            &second_path,
            Some(&first.access),
            Some(json!({"role": "staff"})),
        );
        let demote_first = app.call(
            Method::PATCH,
            &first_path,
            Some(&second.access),
            Some(json!({"role": "staff"})),
        );
        let (a, b) = tokio::join!(demote_second, demote_first);
        let statuses = [a.status().as_u16(), b.status().as_u16()];
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        let mut db = app.db().await;
        let (owners,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM users WHERE org_id = $1 AND role = 'owner'")
                .bind(&first.org_id)
                .fetch_one(&mut db)
                .await
                .unwrap();
        assert_eq!(owners, 1);
    }
}
