//! The ACME account: made once per directory (with the contact of `acme-email`, and external
//! account binding when the CA needs it), kept in the cache, reused on every start and by
//! every instance sharing the cache. Made under the cache's `account` lock, so instances
//! starting together make one.

use std::fs;
use std::io::ErrorKind;
use std::time::SystemTime;

use base64::Engine;
use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};

use super::client::Client;
use super::lease::{self, Holder, Taken};
use super::problem::{failure, Failure};
use crate::config::acme::AcmeConfig;
use crate::tls::acme_cache as cache;
use crate::{error, info};

/// Why there is no account now.
pub(crate) enum NoAccount {
    Failed(Failure),
    /// Another instance is making it.
    Busy(Holder),
}

/// The account of `acme.directory`: from the cache, or made now.
pub(crate) async fn account(
    acme: &AcmeConfig,
    client: &Client,
    me: &str,
) -> Result<Account, NoAccount> {
    let path = cache::account_file(acme);
    if let Some(account) = from_cache(acme, client).await? {
        return Ok(account);
    }
    let dir = cache::directory_dir(acme);
    cache::check_writable(&dir).map_err(|line| NoAccount::Failed(Failure::local(line)))?;
    let lock = cache::lock_file(acme, "account");
    let _lease = match lease::take(&lock, me, SystemTime::now()) {
        Ok(Taken::Mine(lease)) => lease,
        Ok(Taken::Held(holder)) => return Err(NoAccount::Busy(holder)),
        Err(e) => {
            return Err(NoAccount::Failed(Failure::local(cache::unwritable(
                &dir, &e,
            ))))
        }
    };
    // Made by another instance while this one waited for the lock.
    if let Some(account) = from_cache(acme, client).await? {
        return Ok(account);
    }
    let contact = acme.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let eab = match &acme.eab {
        Some(eab) => {
            let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&eab.hmac.0)
                .map_err(|e| NoAccount::Failed(Failure::local(format!("acme-eab-hmac: {e}"))))?;
            Some(ExternalAccountKey::new(eab.kid.clone(), &key))
        }
        None => None,
    };
    let new = NewAccount {
        contact: &contacts,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = Account::builder_with_http(Box::new(client.clone()))
        .create(&new, acme.directory.clone(), eab.as_ref())
        .await
        .map_err(|e| {
            let mut f = failure("creating the ACME account", &e, &acme.directory);
            f.retry_after = client.take_retry_after();
            NoAccount::Failed(f)
        })?;
    let record = serde_json::json!({
        "email": acme.email,
        "credentials": credentials,
    });
    let text = serde_json::to_vec_pretty(&record).unwrap_or_default();
    cache::write_atomic(&path, &text)
        .map_err(|e| NoAccount::Failed(Failure::local(cache::unwritable(&dir, &e))))?;
    info!(
        "ACME: account created at {} ({}), kept in {}",
        acme.directory,
        acme.email.as_deref().unwrap_or("no contact email"),
        path.display()
    );
    Ok(account)
}

/// The account of the cache, if it has one that reads. A damaged file is set aside (and the
/// log says so) so that a new account is made.
async fn from_cache(acme: &AcmeConfig, client: &Client) -> Result<Option<Account>, NoAccount> {
    let path = cache::account_file(acme);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(NoAccount::Failed(Failure::local(format!(
                "cannot read the account file {}: {e}; make the cache readable by the service \
                 user",
                path.display()
            ))))
        }
    };
    let parsed = serde_json::from_slice::<serde_json::Value>(&text)
        .map_err(|e| e.to_string())
        .and_then(|v| {
            let email = v.get("email").and_then(|e| e.as_str()).map(str::to_owned);
            let credentials = v.get("credentials").cloned().unwrap_or_default();
            serde_json::from_value::<AccountCredentials>(credentials)
                .map(|c| (email, c))
                .map_err(|e| e.to_string())
        });
    let (email, credentials) = match parsed {
        Ok(parsed) => parsed,
        Err(why) => {
            let aside = path.with_extension("json.damaged");
            let _ = fs::rename(&path, &aside);
            error!(
                "ACME: the account file {} is damaged ({why}); it is kept as {} and a new \
                 account is made",
                path.display(),
                aside.display()
            );
            return Ok(None);
        }
    };
    let account = Account::builder_with_http(Box::new(client.clone()))
        .from_credentials(credentials)
        .await
        .map_err(|e| {
            let mut f = failure("loading the ACME account", &e, &acme.directory);
            f.retry_after = client.take_retry_after();
            NoAccount::Failed(f)
        })?;
    if email != acme.email {
        let contact = acme.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        match account.update_contacts(&contacts).await {
            Ok(()) => {
                let record = serde_json::json!({
                    "email": acme.email,
                    "credentials": serde_json::from_slice::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v.get("credentials").cloned()),
                });
                let _ = cache::write_atomic(
                    &path,
                    &serde_json::to_vec_pretty(&record).unwrap_or_default(),
                );
                info!(
                    "ACME: the account's contact is now {}",
                    acme.email.as_deref().unwrap_or("none")
                );
            }
            Err(e) => {
                let f = failure("changing the account's contact", &e, &acme.directory);
                error!("ACME: {}", f.line);
            }
        }
    }
    Ok(Some(account))
}
