package ldapsync

import "github.com/ldapscim/ldapscim/ingest"

// The [[rules]] are source-neutral and live in ingest; these names keep ldapsync's API.

// RuleConfig is one [[rules]] entry (ingest.RuleConfig).
type RuleConfig = ingest.RuleConfig

// Rules are compiled [[rules]] (ingest.Rules). The zero value has no rules.
type Rules = ingest.Rules

// RuleResult says whether one rule matched a user and why (ingest.RuleResult).
type RuleResult = ingest.RuleResult

// TermResult is one node of a rule's filter, explained (ingest.TermResult).
type TermResult = ingest.TermResult

// CompileRules validates and compiles the [[rules]] section (ingest.CompileRules).
func CompileRules(cfgs []RuleConfig) (*Rules, error) { return ingest.CompileRules(cfgs) }

// VirtualGroupID returns the id of the virtual group with that display name.
func VirtualGroupID(displayName string) string { return ingest.VirtualGroupID(displayName) }
