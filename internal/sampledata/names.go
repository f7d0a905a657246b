package sampledata

// person is a name as displayed and its ASCII form for uid and mail.
type person struct{ given, givenASCII, sn, snASCII string }

var givenNames = []string{
	"Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hugo", "Isla", "Jonas",
	"Karin", "Liam", "Maria", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Samuel", "Tara",
	"Uma", "Victor", "Wendy", "Xavier", "Yara", "Zoe", "Aisha", "Carlos", "Mei", "Ravi",
}

var surnames = []string{
	"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Wilson",
	"Anderson", "Taylor", "Thomas", "Moore", "Martin", "Jackson", "Lee", "Walker", "Hall",
	"Allen", "Young", "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill",
	"Schmidt", "Rossi", "Novak", "Kowalski", "Tanaka", "Singh", "Haddad", "Silva",
}

// special people exercise non-ASCII values (base64 in LDIF) and ASCII uids derived from them.
var special = []person{
	{"Jürgen", "juergen", "Müller", "mueller"},
	{"Åse", "aase", "Ødegaard", "oedegaard"},
	{"伟", "wei", "王", "wang"},
	{"François", "francois", "Lefèvre", "lefevre"},
	{"Zoë", "zoe", "O'Brien", "obrien"},
}

var titles = []string{
	"Software Engineer", "Senior Software Engineer", "Product Manager", "Designer",
	"Accountant", "Sales Representative", "Support Engineer", "Recruiter", "Analyst",
	"Operations Specialist", "Technical Writer", "Legal Counsel",
}

var departments = []string{
	"Engineering", "Product", "Design", "Finance", "Sales", "Support", "People",
	"Marketing", "Operations", "Legal",
}

var groupWords = []string{
	"backend", "frontend", "oncall", "vpn", "wiki-editors", "payroll", "emea", "apac",
	"interns", "builders", "reviewers", "admins", "readers", "travel", "security",
}
