module github.com/rackfork/rack

go 1.24
