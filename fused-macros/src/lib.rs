//! `#[fused::cache]`: caches an async function's successful results, as `@fused.cache` does in
//! Python. Use it through the `fused` crate:
//!
//! ```ignore
//! #[fused::cache(max_age = "12h")]
//! async fn area(city: String, zoom: u8) -> Result<fused::Table, MyError> {
//!     // … expensive work …
//! }
//! ```
//!
//! The function must be `async`, return a `Result` whose `Ok` type implements
//! `fused::cache::CacheValue`, and take arguments written `name: Type` whose types implement
//! `serde::Serialize` (they make the key, with their type names). Editing the function's body
//! invalidates its entries: the key includes a hash of its source tokens. Options:
//! `max_age` ("30m", "12h", "2d" or seconds), `folder_path`, `concurrent_lock_timeout`
//! (seconds), `reset`, `storage` ("auto", "local", "mount", "object"), `key_exclude`
//! (`["arg", …]`), `verbose`.

use proc_macro::TokenStream;
use quote::{quote, quote_spanned};
use sha2::{Digest, Sha256};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, ItemFn, Lit, Meta, Pat, Token};

/// Caches an async function's successful results (see the crate docs).
#[proc_macro_attribute]
pub fn cache(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Seconds of a max age literal: `"<digits>[smhd]"`, `"0"` or an integer.
fn seconds(lit: &Lit) -> syn::Result<u64> {
    let bad = || {
        syn::Error::new(
            lit.span(),
            "expected a number of seconds or text like \"30s\", \"10m\", \"12h\", \"2d\"",
        )
    };
    match lit {
        Lit::Int(i) => i.base10_parse::<u64>(),
        Lit::Str(s) => {
            let t = s.value().trim().to_ascii_lowercase();
            // Bare digits are seconds.
            if let Ok(n) = t.parse::<u64>() {
                return Ok(n);
            }
            let Some(unit) = t.chars().last() else {
                return Err(bad());
            };
            let num = &t[..t.len() - unit.len_utf8()];
            let n: u64 = num.parse().map_err(|_| bad())?;
            let mult = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3_600,
                'd' => 86_400,
                _ => return Err(bad()),
            };
            n.checked_mul(mult).ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

fn lit_of(e: &Expr) -> syn::Result<&Lit> {
    match e {
        Expr::Lit(ExprLit { lit, .. }) => Ok(lit),
        other => Err(syn::Error::new(other.span(), "expected a literal")),
    }
}

fn expand(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let source_hash = hex::encode(&Sha256::digest(item.to_string().as_bytes())[..16]);
    let func: ItemFn = syn::parse2(item)?;
    if func.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            func.sig.span(),
            "#[fused::cache] needs an async fn (it returns a Result)",
        ));
    }
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    let mut options = Vec::new();
    let mut excluded: Vec<(String, proc_macro2::Span)> = Vec::new();
    for meta in metas {
        let nv = match meta {
            Meta::NameValue(nv) => nv,
            Meta::Path(p) if p.is_ident("reset") => {
                options.push(quote!(reset: true,));
                continue;
            }
            other => {
                return Err(syn::Error::new(other.span(), "expected `name = value`"));
            }
        };
        let name = nv
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        let v = &nv.value;
        options.push(match name.as_str() {
            "max_age" | "cache_max_age" => {
                let secs = seconds(lit_of(v)?)?;
                quote!(max_age: ::core::option::Option::Some(::fused::MaxAge::from_secs(#secs)),)
            }
            "folder_path" | "cache_folder_path" => quote!(folder_path: ::std::string::String::from(#v),),
            "concurrent_lock_timeout" => {
                let secs = seconds(lit_of(v)?)?;
                quote!(concurrent_lock_timeout: ::std::time::Duration::from_secs(#secs),)
            }
            "reset" | "cache_reset" => quote!(reset: #v,),
            "verbose" | "cache_verbose" => quote!(verbose: ::core::option::Option::Some(#v),),
            "storage" | "cache_storage" => {
                let Lit::Str(s) = lit_of(v)? else {
                    return Err(syn::Error::new(v.span(), "expected \"auto\", \"local\", \"mount\" or \"object\""));
                };
                let variant = match s.value().as_str() {
                    "auto" => quote!(Auto),
                    "local" => quote!(Local),
                    "mount" => quote!(Mount),
                    "object" => quote!(Object),
                    _ => {
                        return Err(syn::Error::new(
                            s.span(),
                            "expected \"auto\", \"local\", \"mount\" or \"object\"",
                        ));
                    }
                };
                quote!(storage: ::fused::cache::CacheStorage::#variant,)
            }
            "key_exclude" | "cache_key_exclude" => {
                let Expr::Array(arr) = v else {
                    return Err(syn::Error::new(v.span(), "expected [\"arg\", …]"));
                };
                for e in &arr.elems {
                    match lit_of(e)? {
                        Lit::Str(s) => excluded.push((s.value(), s.span())),
                        other => {
                            return Err(syn::Error::new(other.span(), "expected an argument name"));
                        }
                    }
                }
                let names = arr.elems.iter();
                quote!(key_exclude: ::std::vec![#(::std::string::String::from(#names)),*],)
            }
            other => {
                return Err(syn::Error::new(
                    nv.path.span(),
                    format!("unknown option `{other}` (max_age, folder_path, concurrent_lock_timeout, reset, storage, key_exclude, verbose)"),
                ));
            }
        });
    }
    let mut args = Vec::new();
    for input in &func.sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                return Err(syn::Error::new(
                    r.span(),
                    "#[fused::cache] works on free functions (put methods' work in one)",
                ));
            }
            FnArg::Typed(t) => match t.pat.as_ref() {
                Pat::Ident(id) => {
                    let ident = &id.ident;
                    let name = ident.to_string();
                    // Excluded arguments are left out entirely: they need not be Serialize.
                    if let Some(i) = excluded.iter().position(|(n, _)| *n == name) {
                        excluded.remove(i);
                    } else {
                        args.push(quote_spanned!(t.span()=> .arg(#name, &#ident)));
                    }
                }
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "#[fused::cache] needs arguments written `name: Type`",
                    ));
                }
            },
        }
    }
    if let Some((name, span)) = excluded.first() {
        return Err(syn::Error::new(
            *span,
            format!("key_exclude names `{name}`, which is not an argument"),
        ));
    }
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let name = sig.ident.to_string();
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            let __fused_cache_options = ::fused::cache::CacheOptions {
                #(#options)*
                ..::core::default::Default::default()
            };
            let __fused_cache_key = ::fused::cache::CacheKey::new(
                ::core::concat!(::core::module_path!(), "::", #name)
            )
            .source(#source_hash)
            #(#args)*;
            ::fused::cache::cached(
                __fused_cache_key,
                &__fused_cache_options,
                move || async move #block,
            )
            .await
        }
    })
}
